"""Support for tests and benches: generated clips (`media`) and toy latent videos (`toy`). The library never
imports this package."""
