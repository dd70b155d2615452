"""HTTP API for credit teams and the farmer's map: routers call the same domain functions as the CLI."""
