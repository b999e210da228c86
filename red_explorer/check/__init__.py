"""`red-explorer check`: a few-minute end-to-end check of training, exactness, Compare and the app on one device."""
