"""Every Redis key, stream and channel name, defined once.

Stream names carry a payload version: a change to what an entry holds gets a new name.
"""

from __future__ import annotations

import msgspec


class RedisKeys(msgspec.Struct, frozen=True):
    prefix: str = "afftok"
    click_stream_shards: int = 1

    def click_stream(self, shard: int) -> str:
        """Stream of click batches (one entry = one edge group commit), shard ``shard``."""
        return f"{self.prefix}:v1:clicks:{shard}"

    def click_streams(self) -> list[str]:
        return [self.click_stream(n) for n in range(self.click_stream_shards)]

    @property
    def click_dead_letters(self) -> str:
        """Entries the ingest worker could not apply, with the reason."""
        return f"{self.prefix}:v1:clicks:dead"

    def conversion_stream(self, shard: int) -> str:
        """Stream of accepted postbacks (one entry = one edge group commit), shard ``shard``.

        Sharded like the click streams (``click_stream_shards``)."""
        return f"{self.prefix}:v1:conversions:{shard}"

    def conversion_streams(self) -> list[str]:
        return [self.conversion_stream(n) for n in range(self.click_stream_shards)]

    @property
    def conversion_dead_letters(self) -> str:
        """Entries the conversion worker could not apply, with the reason."""
        return f"{self.prefix}:v1:conversions:dead"

    @property
    def postback_auth(self) -> str:
        """Hash written by the api, read by the edge: ``adv:<advertiser id>`` -> msgpack
        AdvertiserAuth, ``tok:<sha256 hex of a postback token>`` and ``key:<sha256 hex of
        an API key>`` -> msgpack PostbackCredential."""
        return f"{self.prefix}:v1:postback-auth"

    @property
    def postback_auth_changes(self) -> str:
        """Pub/sub channel: msgpack list of changed ``postback_auth`` fields, [] = reload all."""
        return f"{self.prefix}:v1:postback-auth-changes"

    @property
    def link_configs(self) -> str:
        """Hash: link token -> msgpack LinkConfig. Written by the api, read by the edge."""
        return f"{self.prefix}:v1:links"

    @property
    def config_changes(self) -> str:
        """Pub/sub channel: msgpack list of changed tokens, or [] for 'reload everything'."""
        return f"{self.prefix}:v1:config-changes"

    def rate_limit(self, principal_type: str, principal_id: str) -> str:
        """String: the principal's GCRA theoretical arrival time in ms (api.rate_limit); expires when idle."""
        return f"{self.prefix}:v1:ratelimit:{principal_type}:{principal_id}"

    @property
    def arq_queue(self) -> str:
        return f"{self.prefix}:arq:queue"
