"""HTTP: the blueprints in `views/` (push, export, probes, admin, metrics, OpenAPI, the pages),
HTTP Basic credentials and the throttling of failed ones, the pages' form tokens, and the
OpenAPI document built from the wire schemas."""
