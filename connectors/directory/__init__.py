"""The provider directory at the edge: its entries, HSDS 3.0 mapping, demo file and client."""
