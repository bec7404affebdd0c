"""Environment ids and their registration with Gymnasium."""
