"""The HTTP API: routers per audience, authentication, problem+json errors."""
