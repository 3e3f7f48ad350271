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


def pattern_matches(pattern: str, product: str) -> bool:
    """A pattern matches when its family is the product's and its other tokens all appear."""
    wanted = pattern.split("-")
    have = product.split("-")
    return bool(have) and wanted[0] == have[0] and set(wanted[1:]) <= set(have[1:])


def specificity(pattern: str) -> int:
    return pattern.count("-") + 1
