"""GPU product names as clusters spell them, reduced to one canonical form.

GFD says `NVIDIA-A100-SXM4-80GB`, GKE `nvidia-a100-80gb`, Karpenter `a100`; all three
normalise to tokens (`A100`, `80GB`) so that a policy pattern `A100` matches every A100 and
`A100-80GB` only the 80 GB ones.
"""

from __future__ import annotations

import re

_VENDOR_TOKENS = frozenset({"NVIDIA", "TESLA", "GEFORCE", "QUADRO"})
# Form factor and memory technology do not change which class a GPU belongs to.
_FORM_FACTOR = re.compile(r"^(SXM\d*|PCIE|HBM\d*E?|GDDR\d*X?)$")
_MEMORY = re.compile(r"^(\d+)(GB|G|GIB)$")


def normalise_product(raw: str) -> str:
    """Canonical product name: upper case, no vendor prefix or form factor, `-` separated."""
    tokens = [t for t in re.split(r"[-_\s]+", raw.strip().upper()) if t]
    while tokens and tokens[0] in _VENDOR_TOKENS:
        tokens.pop(0)
    kept: list[str] = []
    for token in tokens:
        if token in _VENDOR_TOKENS or _FORM_FACTOR.match(token):
            continue
        memory = _MEMORY.match(token)
        kept.append(f"{memory[1]}GB" if memory else token)
    return "-".join(kept)


def with_memory(product: str, memory_mib: int | None) -> str:
    """Add a memory token (GFD reports MiB) when the product name carries none."""
    if memory_mib is None or memory_mib <= 0 or has_memory_token(product):
        return product
    return f"{product}-{round(memory_mib / 1024)}GB"


def has_memory_token(product: str) -> bool:
    return any(_MEMORY.match(t) for t in product.split("-"))


# Advertised sizes differ from what drivers report (an L40S "48GB" reports 46068 MiB, a
# T4 "16GB" 15360 MiB), so memory tokens match within this relative tolerance.
MEMORY_TOLERANCE = 0.10


def _memory_gb(token: str) -> int | None:
    match = _MEMORY.match(token)
    return int(match[1]) if match else None


def pattern_matches(pattern: str, product: str) -> bool:
    """A pattern matches when its family is the product's and its other tokens all appear.

    A memory token (`80GB`) matches the product's memory within MEMORY_TOLERANCE.
    """
    wanted = pattern.split("-")
    have = product.split("-")
    if not have or wanted[0] != have[0]:
        return False
    have_tokens = set(have[1:])
    have_memory = [m for t in have_tokens if (m := _memory_gb(t)) is not None]
    for token in wanted[1:]:
        memory = _memory_gb(token)
        if memory is None:
            if token not in have_tokens:
                return False
        elif not any(abs(m - memory) <= MEMORY_TOLERANCE * memory for m in have_memory):
            return False
    return True


def specificity(pattern: str) -> int:
    return pattern.count("-") + 1
