"""The motif grammar the offline proposers search: a mixer is a choice of one motif per slot.

Every design in the space is a linear-attention-style recurrence over a matrix memory S per head,

    additive:  S_t = a_t S_{t-1} + b_t k_t v_t^T
    delta:     S_t = a_t S_{t-1} + b_t k_t (v_t - a_t S_{t-1}^T k_t)^T      (overwrite, not add)
    output:    o_t = S_t^T q_t,  then optional norm, gate and projection

and the slots choose how q, k, v, the decay a_t and the write strength b_t are made. The space
holds the classic designs (linear attention, retention, GLA-like gating, DeltaNet, Gated DeltaNet)
and a few thousand neighbours. A genome renders, through `mixer.py.j2`, into a readable candidate
file with a chunkwise `forward` and a token-by-token `forward_reference`; no dead branches.

    genome = sample(random.Random(0))
    child = random.Random(1).choice(neighbours(genome))
    source = render(child)
    name = readable_name(child)  # e.g. "delta-decay-silu-wgate-conv4-silugate"

A design's identity is its genome's `key()` (for an architecture, its rendered code); its name is
for people and says only what the design has, so a study keeps names unique itself.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache
from importlib import resources
from itertools import product
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict


class Genome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    update: Literal["additive", "delta"] = "delta"  # add k v^T, or overwrite what S says about k
    decay: Literal["none", "fixed", "data"] = "data"  # a_t: 1, a learned rate per head, or input-dependent
    feature_map: Literal["identity", "elu1", "relu", "silu"] = "identity"  # applied to q and k
    qk_norm: Literal["none", "l2"] = "l2"  # unit-norm q and k (the delta rule needs unit keys)
    write_gate: Literal["none", "data"] = "data"  # b_t: 1, or sigmoid of the input per head
    short_conv: Literal[0, 2, 4] = 4  # kernel of a causal depthwise conv on q, k, v (0: none)
    output_norm: Literal["none", "rms"] = "rms"  # per-head RMS norm of o_t
    output_gate: Literal["none", "sigmoid", "silu"] = "silu"  # o * gate(W x)
    heads: Literal[1, 2, 4, 8] = 4  # heads of the memory (capped by d_model's divisors)

    def key(self) -> str:
        """A stable identity: equal genomes, equal keys (what novelty compares; names are for people)."""
        fields = ",".join(f"{name}={value}" for name, value in self.model_dump().items())
        return hashlib.sha256(fields.encode()).hexdigest()[:10]

    def describe(self) -> str:
        """One line a person can read, e.g. 'delta rule, no decay, unit q/k, 4 heads'."""
        parts = ["delta rule" if self.update == "delta" else "additive memory"]
        parts.append({"none": "no decay", "fixed": "fixed decay", "data": "data-dependent decay"}[self.decay])
        if self.feature_map != "identity":
            parts.append(f"{self.feature_map} feature map")
        if self.qk_norm == "l2":
            parts.append("unit q/k")
        if self.write_gate == "data":
            parts.append("gated writes")
        if self.short_conv:
            parts.append(f"short conv {self.short_conv}")
        if self.output_norm == "rms":
            parts.append("rms output norm")
        if self.output_gate != "none":
            parts.append(f"{self.output_gate} output gate")
        parts.append(f"{self.heads} head{'s' if self.heads > 1 else ''}")
        return ", ".join(parts)


# The grammar's renditions of the classic designs, oldest first: where evolution starts, as
# ASI-Arch starts from DeltaNet. (The built-in baselines of the same names are independent,
# closer-to-the-paper implementations; these are points of the space, so they can be mutated.)
CLASSICS: dict[str, Genome] = {
    "linear attention": Genome(
        update="additive", decay="none", feature_map="elu1", qk_norm="none", write_gate="none",
        short_conv=0, output_norm="none", output_gate="none",
    ),
    "retention": Genome(
        update="additive", decay="fixed", qk_norm="none", write_gate="none", short_conv=0,
    ),
    "GLA": Genome(update="additive", decay="data", qk_norm="none", write_gate="none", short_conv=0),
    "DeltaNet": Genome(decay="none", feature_map="silu", output_gate="none"),
    "Gated DeltaNet": Genome(feature_map="silu"),
}  # fmt: skip


SLOTS: dict[str, tuple[Any, ...]] = {
    name: field.annotation.__args__  # type: ignore[union-attr]
    for name, field in Genome.model_fields.items()
}


def canonical(genome: Genome) -> Genome:
    """One representative per distinct architecture: the delta rule always uses unit keys (without
    them a write can amplify the state without bound), so its `qk_norm` is fixed to l2."""
    if genome.update == "delta" and genome.qk_norm != "l2":
        return genome.model_copy(update={"qk_norm": "l2"})
    return genome


@cache
def space() -> tuple[Genome, ...]:
    """Every distinct architecture of the grammar (a few thousand), in a fixed order."""
    genomes = {
        canonical(Genome(**dict(zip(SLOTS, values, strict=True)))) for values in product(*SLOTS.values())
    }
    return tuple(sorted(genomes, key=Genome.key))


def sample(rng: random.Random) -> Genome:
    """Uniform over the distinct architectures: the random-search control."""
    return rng.choice(space())


def neighbours(genome: Genome) -> list[Genome]:
    """Every distinct architecture one motif away from `genome`, in a fixed order."""
    found: dict[Genome, None] = {}
    for slot, values in SLOTS.items():
        for value in values:
            child = canonical(genome.model_copy(update={slot: value}))
            if child != genome:
                found[child] = None
    return list(found)


def difference(parent: Genome, child: Genome) -> dict[str, tuple[Any, Any]]:
    """slot -> (parent's motif, child's motif), for every slot where they differ."""
    return {
        slot: (getattr(parent, slot), getattr(child, slot))
        for slot in SLOTS
        if getattr(parent, slot) != getattr(child, slot)
    }


NAME_CHARS = 40  # a name fits a leaderboard column

# The word each motif adds to a design's name, in the order of SLOTS. A motif not listed adds none:
# nothing there (no decay, gate or convolution, identity features), or the usual 4 heads.
NAME_WORDS: dict[str, dict[Any, str]] = {
    "update": {"additive": "add", "delta": "delta"},
    "decay": {"fixed": "fixdecay", "data": "decay"},
    "feature_map": {"elu1": "elu1", "relu": "relu", "silu": "silu"},
    "qk_norm": {"l2": "l2qk"},
    "write_gate": {"data": "wgate"},
    "short_conv": {2: "conv2", 4: "conv4"},
    "output_norm": {"rms": "rms"},
    "output_gate": {"sigmoid": "siggate", "silu": "silugate"},
    "heads": {1: "h1", 2: "h2", 8: "h8"},
}

# A name past NAME_CHARS leaves out these motifs' words, least telling first, until it fits.
LEFT_OUT_FIRST = ("output_norm", "qk_norm", "heads", "write_gate")


def readable_name(genome: Genome) -> str:
    """A short kebab-case name of what the design has, e.g. 'add-elu1' for linear attention or
    'delta-silu-wgate-conv4-rms' for DeltaNet. It names every motif unless that would pass
    NAME_CHARS, so two designs can share one; a study makes its names unique."""
    words = {
        slot: NAME_WORDS[slot][value]
        for slot in SLOTS
        if (value := getattr(genome, slot)) in NAME_WORDS[slot]
    }
    if genome.update == "delta":
        words.pop("qk_norm", None)  # implied: the delta rule always has unit q/k (see `canonical`)
    for slot in LEFT_OUT_FIRST:
        if len("-".join(words.values())) <= NAME_CHARS:
            break
        words.pop(slot, None)
    return "-".join(words.values())


@cache
def _template() -> jinja2.Template:
    source = resources.files("discover.agents").joinpath("mixer.py.j2").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(source)


def render(genome: Genome) -> str:
    """The candidate file for `genome`."""
    return _template().render(g=genome, description=genome.describe())
