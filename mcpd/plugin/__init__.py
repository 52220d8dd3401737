"""The plugin-facing edge: everything a plugin author touches, and how plugins are loaded."""
