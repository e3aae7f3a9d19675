"""The senprep Panel app (served with ``panel serve app``). The library never imports it."""
