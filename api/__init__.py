"""The API node: Cloudflare's v4 REST API for Workers KV, in front of central's gRPC."""
