"""What leaves the notebook: running real TorchServe on the same model store, and exports."""
