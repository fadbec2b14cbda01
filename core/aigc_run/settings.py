"""Machine-wide settings from ``AIGC_*`` environment variables (pydantic-settings).

Scenario values are not settings: they are overridden with ``AIGC_<SECTION>__<KEY>``
(see ``scenario.py``); the variables here say where things live and what to load.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIGC_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".aigc-run",
        description="data cache, checkpoints, samples and the default SQLite registry",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the run registry; unset = SQLite under home"
    )
    disable_plugins: str = Field("", description="comma-separated plugin names not to load")

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def registry_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def disabled(self) -> set[str]:
        return {name.strip() for name in self.disable_plugins.split(",") if name.strip()}
