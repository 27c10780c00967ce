"""One module per resource. A handler decodes, calls one domain function, encodes."""
