"""Jinja2 templates shipped inside the buildkit-tasks wheel."""
