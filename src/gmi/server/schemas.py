"""The HTTP API's response bodies, as pydantic models: the OpenAPI schema is generated from
them, and every response is validated against them, so the schema cannot drift from what the
server sends (schemathesis checks both against a live server in the tests)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gmi.metadata.writers import WRITERS

WRITER_NAMES = Literal[WRITERS]  # type: ignore[valid-type]


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer: one human-readable line."""

    error: str


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: some models cannot be used (see problems); the rest still are"
    )
    models: int = Field(ge=0, description="registered models")
    usable: int = Field(ge=0, description="models that identification ranks")
    problems: list[str] = Field(default_factory=list)
    version: str


class EvidenceOut(BaseModel):
    """A spec image of the model close to the query: why it ranked where it did."""

    image: int = Field(ge=0, description="index of the model's example image")
    prompt: str
    similarity: float = Field(description="cosine similarity of the image features")
    url: str


class MatchOut(BaseModel):
    rank: int = Field(ge=1)
    model: str
    score: float = Field(
        ge=0.0,
        le=1.0,
        description="calibrated on the hub's own images: 1 = as close as the closest of the "
        "models' own images, 0.5 = like a typical one, 0 = farther than all of them",
    )
    distance: float = Field(description="raw distance of the scoring rule; lower is better")
    close_match: bool = Field(description="within the range of the hub's genuine matches")
    exact_match: bool = Field(
        description="the image's embedded generation metadata names this model's checkpoint "
        "by a hash or AIR it was submitted with"
    )
    named_match: bool = Field(
        default=False,
        description="the metadata names this model's checkpoint by file name only (ranked "
        "first when no hash contradicts it)",
    )
    description: str
    evidence: list[EvidenceOut]


class ReferenceOut(BaseModel):
    """A checkpoint or add-on the image's metadata names."""

    name: str | None = None
    role: str = Field(description="checkpoint, refiner, other, lora, hypernetwork, ...")
    hashes: dict[str, str] = Field(
        default_factory=dict,
        description="kind -> value: autov1, autov2, autov3, sha256, blake3, air, "
        "civitai_version, novelai",
    )
    weight: float | None = None


class ProvenanceOut(BaseModel):
    """A C2PA manifest (Content Credentials) the image carries."""

    c2pa: bool = True
    read: bool = Field(description="false: present but not read (reason says why)")
    claim_generator: str | None = None
    ai_generated: bool | None = None
    signed_by: str | None = None
    validation: str | None = None
    reason: str | None = None


class EmbeddedOut(BaseModel):
    """Generation metadata the image carried (docs/identify-output.md lists the writers)."""

    writer: WRITER_NAMES = Field(description="the front-end recognised")
    source: str = Field(description="the same as writer (the older name)")
    prompt: str | None = None
    negative_prompt: str | None = None
    model_hash: str | None = None
    model: str | None = None
    models: list[ReferenceOut] = Field(default_factory=list)
    loras: list[ReferenceOut] = Field(default_factory=list)
    container: str | None = None


class ResourceOut(BaseModel):
    """A LoRA (or another checkpoint) the image names that this hub holds."""

    model: str = Field(description="the hub's model")
    name: str | None = Field(default=None, description="as the image names it")
    role: str
    match: Literal["exact", "named"]
    weight: float | None = None


class SearchOut(BaseModel):
    """How an approximate searcher found the models that were scored exactly."""

    searcher: str
    certified: bool | None = Field(
        default=None,
        description="true: the listed top is provably the exact ranking's, given the index's "
        "nearest points (METHOD.md section 9); false: a heuristic shortlist",
    )
    rounds: int = Field(ge=0, description="shortlists asked for (each 4x the points)")
    points: int | None = Field(default=None, description="nearest points asked for, last round")
    candidates: int | None = Field(default=None, description="models in the last shortlist")
    scored: int | None = Field(default=None, description="models scored exactly, last round")
    budget: int | None = Field(
        default=None, description="big hubs: how many candidates could be scored exactly"
    )
    fallback: str | None = Field(default=None, description="'exact scan' when not certified")


class IdentifyOut(BaseModel):
    """One requirement's ranking (one image, or all images with together=true)."""

    image: str | list[str]
    prompt: str
    prompt_source: Literal["interrogated", "stated", "embedded"]
    close_match: bool = Field(description="false: none of the listed models is a close match")
    results: list[MatchOut]
    resources: list[ResourceOut] = Field(default_factory=list)
    embedded: EmbeddedOut | list[EmbeddedOut | None] | None = None
    provenance: ProvenanceOut | list[ProvenanceOut | None] | None = Field(
        default=None, description="C2PA Content Credentials the image carries"
    )
    warnings: list[str] = Field(default_factory=list)
    search: SearchOut | None = Field(
        default=None, description="how the candidates were found (registries with a shortlist)"
    )


class ModelOut(BaseModel):
    """A registered model (the catalogue entry)."""

    name: str
    description: str
    encoder: str
    n_images: int = Field(ge=0)
    n_points: int = Field(ge=0)
    created: float
    updated: float
    spec_sha256: str
    extra: dict[str, Any] = Field(default_factory=dict)


class SubmittedOut(ModelOut):
    """A model just added: its catalogue entry, and the registered model it copies."""

    near_duplicate_of: str | None = Field(
        default=None,
        description="a registered model this one is a near-duplicate of (the same checkpoint "
        "identity, or images that cannot be told apart from its); it is stored all the same",
    )


class SimilarOut(BaseModel):
    """A model whose images are like the asked model's own (gmi.identify.similar)."""

    model: str
    score: float = Field(
        description="calibrated as identify's: the share of genuine matches at least this far"
    )
    distance: float


class ModelDetailOut(ModelOut):
    example_prompts: list[str]
    images: list[str] = Field(description="URLs of example images (JPEG thumbnails)")


class RemovedOut(BaseModel):
    removed: str
