"""Static web archive of sent issues."""
