"""The editing core: edit sites, the shared edit state, the edits folder, and one folder per method."""
