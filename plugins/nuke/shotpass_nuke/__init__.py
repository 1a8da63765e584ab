"""shotpass Nuke plugin. Only `host` imports nuke; `controller`, `panel` and `bootstrap` are plain Python."""
