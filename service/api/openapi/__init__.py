"""`GET /openapi.json`: the OpenAPI 3.1 document, built from the models that validate requests."""
