"""Track prediction over BED regions (``lrgen predict``)."""
