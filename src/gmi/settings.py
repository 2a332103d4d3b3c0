"""HubSettings: a registry's settings as one frozen, validated value.

The registry stores settings as text (SQLite key/value rows, so old and new gmi versions can
read them); everything else in gmi gets this object, checked once, with real types. Values a
registry fixes at its first submit (gamma, image_dim, prompt_dim) are None until then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from gmi.augment import AUGMENTS, DEFAULT_AUGMENT
from gmi.encoders import DEFAULT_ENCODER
from gmi.errors import ConflictError, InvalidInputError
from gmi.interrogators import DEFAULT_INTERROGATOR
from gmi.search.rules import SCORINGS
from gmi.search.searchers import SEARCHER_NAMES
from gmi.spec.scoring import DEFAULT_SCORING, DEFAULT_TAU
from gmi.spec.space import DEFAULT_SPACE, DEFAULT_SPACE_DIMS, SPACES, storage_of
from gmi.submit.kept import DEFAULT_KEEP_IMAGES, KEEP_IMAGES

COMBINES = ("mean", "joint")
# what a caller may ask of a registry it creates (Hub keywords, `gmi init` options); the rest
# of HubSettings (image_dim, prompt_dim) is read from the first model
REQUESTABLE = (
    "encoder",
    "interrogator",
    "n_points",
    "gamma",
    "tau",
    "combine",
    "augment",
    "scoring",
    "space",
    "space_dims",
    "searcher",
    "milvus_uri",
    "keep_images",
)


@dataclass(frozen=True)
class HubSettings:
    encoder: str = DEFAULT_ENCODER
    interrogator: str = DEFAULT_INTERROGATOR
    tau: float = DEFAULT_TAU
    combine: str = "mean"
    augment: str = DEFAULT_AUGMENT
    scoring: str = DEFAULT_SCORING
    searcher: str = "exact"
    milvus_uri: str | None = None  # the milvus searcher's Milvus (a .db file = Milvus Lite)
    keep_images: str = DEFAULT_KEEP_IMAGES  # what a submit keeps of its images (submit/kept)
    space: str = DEFAULT_SPACE  # registries made before the learned space stored "identity"
    # directions the learned space keeps (0 = all, float32 points: registries made before
    # compact spaces); r > 0 packs points r wide in bfloat16 (gmi.spec.space, gmi.search.bf16)
    space_dims: int = DEFAULT_SPACE_DIMS
    n_points: int | None = None
    gamma: float | None = None
    image_dim: int | None = None
    prompt_dim: int | None = None

    def __post_init__(self) -> None:
        for key, valid in (
            ("augment", AUGMENTS),
            ("scoring", SCORINGS),
            ("combine", COMBINES),
            ("searcher", SEARCHER_NAMES),
            ("space", SPACES),
            ("keep_images", KEEP_IMAGES),
        ):
            if getattr(self, key) not in valid:
                raise InvalidInputError(f"{key} must be one of {', '.join(valid)}")
        if not self.tau > 0:
            raise InvalidInputError("tau must be positive")
        if self.gamma is not None and not self.gamma > 0:
            raise InvalidInputError("gamma must be positive")
        if self.space_dims < 0:
            raise InvalidInputError("space_dims must be 0 (all) or a positive number")
        if self.n_points is not None and self.n_points < 1:
            raise InvalidInputError("n_points must be at least 1")

    @classmethod
    def from_strings(cls, stored: Mapping[str, str]) -> HubSettings:
        """From the registry's text rows (unknown keys are ignored: newer gmi versions)."""
        try:
            return cls(
                **{k: v for k, v in stored.items() if k in _TEXT},
                **{k: float(stored[k]) for k in _FLOAT if k in stored},
                **{k: int(stored[k]) for k in _INT if k in stored},
            )
        except ValueError as exc:
            raise InvalidInputError(f"registry settings: {exc}") from exc

    @classmethod
    def resolve(
        cls, stored: Mapping[str, str], requested: Mapping[str, object], home: object
    ) -> HubSettings:
        """A registry's settings: its stored values win over requested ones (fixed at
        creation); asking for another encoder than it has is refused (features of two
        encoders are not comparable). `requested` None values are not asked for."""
        wanted = {k: v for k, v in requested.items() if v is not None}
        if stored.get("encoder") and "encoder" in wanted and wanted["encoder"] != stored["encoder"]:
            raise ConflictError(
                f"registry {home} uses encoder {stored['encoder']!r}, not "
                f"{wanted['encoder']!r}; specs of different encoders cannot be compared "
                "(use another --home)"
            )
        asked = cls.from_strings({k: str(v) for k, v in wanted.items()})
        return cls.from_strings({**asked.to_strings(), **stored})

    def to_strings(self) -> dict[str, str]:
        """The text rows to store (None values are left out: not fixed yet)."""
        return {
            k: (repr(v) if isinstance(v, float) else str(v))
            for k, v in asdict(self).items()
            if v is not None
        }

    def with_values(self, **values: object) -> HubSettings:
        return replace(self, **values)

    @property
    def space_storage(self) -> str:
        """How a newly fitted space stores its points (gmi.spec.space.storage_of)."""
        return storage_of(self.space_dims)

    @property
    def interrogated(self) -> bool:
        """Whether queries get interrogated prompts (else uniform weights)."""
        return self.interrogator != "none"


_FLOAT = ("tau", "gamma")
_INT = ("n_points", "image_dim", "prompt_dim", "space_dims")
_TEXT = (
    "encoder",
    "interrogator",
    "combine",
    "augment",
    "scoring",
    "searcher",
    "space",
    "milvus_uri",
    "keep_images",
)
