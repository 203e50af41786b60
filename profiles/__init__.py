"""The shipped hardware profiles (YAML). This folder installs as `seekdeploy.shipped_profiles`;
the file makes it a regular package so editable installs can map it (see setup.py)."""
