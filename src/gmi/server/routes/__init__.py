"""The service's routes, one module per area: identify (+ health), models, pages."""
