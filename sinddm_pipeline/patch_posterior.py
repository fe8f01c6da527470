"""The closed-form (MMSE) denoiser of an image's patches: pure tensor functions, chunked so that memory stays bounded.

If the clean patch p is uniform over a finite set {p_1 .. p_N} and z = p + sigma·eps with eps standard normal,
the posterior mean is

    E[p | z] = sum_k w_k p_k,   w = softmax_k( -||z - p_k||^2 / (2 sigma^2) )
                                  = softmax_k( (z·p_k - ||p_k||^2 / 2) / sigma^2 )

(||z||^2 is the same for every k, so it drops out). Two refinements, both still exact posteriors of a stated model:

- **Guides.** The set may hold pairs (p_k, q_k) of which the query's partner b of q_k is also observed, with noise
  tau: the logits gain ``(b·q_k - ||q_k||^2/2) / tau^2`` and the estimate is still the weighted average of the p_k.
- **Padding.** Images are padded with ``padding`` zeros and every patch of the padded image is in the set; a patch's
  *border code* says how far it overhangs each border. The padding of a query is known exactly, so a query only
  matches references with the same code (where none has it, every reference): patches at the image's borders look
  like the training image's borders, as a zero-padded CNN's do.

An image estimate is put together from the estimates of overlapping query patches by a weighted average at every
pixel, each patch weighted by a separable Gaussian window exp(-(u^2 + v^2) / (2 rho^2)) over u, v in [-1, 1]
(``rho`` ``None``: uniform).

Two options trade exactness for speed, each measured against the exact sum in the tests and benchmarks:

- ``stride`` > 1: the query patches lie on a grid of that stride (shifted by ``offset``), not at every pixel;
- a [`CandidateIndex`] (an inverted-file index, as FAISS's IVF): k-means clusters of the references in a PCA space
  of their search features (the guides when guides are used, else the patches themselves); each query is compared
  exactly, in full dimension, with the members of its cluster's ``num_probes`` nearest clusters only, not with all
  N references. Where the softmax is sharp (small tau or sigma) the weight outside the candidates is negligible.

Memory is bounded by ``chunk_size``: at most ``chunk_size`` queries are held at once, each with one row of logits.

Example:
    >>> import torch
    >>> from sinddm_pipeline.patch_posterior import ReferencePatches, posterior_mean_image
    >>> image = torch.rand(1, 3, 20, 24) * 2 - 1
    >>> reference = ReferencePatches.from_image(image, patch_size=5)
    >>> estimate = posterior_mean_image(image, 1e-3, reference)  # barely noisy: the image itself comes back
    >>> bool((estimate - image).abs().max() < 1e-4)
    True
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

DEFAULT_CHUNK_SIZE = 4096
"""Queries per chunk: one chunk of exact logits against 46,000 references (a 248x186 scale) takes ~750 MB."""


def unfold_all(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Every patch (stride 1) of a (1, C, H, W) image as rows (N, C·P·P), in raster order of their corners, each row
    channels first as `torch.nn.functional.unfold` orders it."""
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image of shape (1, C, H, W), got {tuple(image.shape)}.")
    return F.unfold(image, patch_size).squeeze(0).T.contiguous()


def border_codes(
    height: int, width: int, patch_size: int, padding: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """One int per patch (raster order of ``rows x cols``, corners in padded coordinates) that encodes how far the
    patch overhangs each border of the unpadded ``height x width`` image (0 for interior patches)."""

    def overhang(position: torch.Tensor, length: int) -> torch.Tensor:
        before = (padding - position).clamp(min=0)
        after = (position + patch_size - padding - length).clamp(min=0)
        return before * 1000 + after

    return (overhang(rows, height)[:, None] * 1_000_000 + overhang(cols, width)[None, :]).reshape(-1)


def grid_positions(length: int, patch_size: int, stride: int = 1, offset: int = 0) -> torch.Tensor:
    """Corner positions along one side of ``length`` px: ``offset, offset + stride, ...`` plus the first and the
    last, so that every pixel is covered (``stride`` <= ``patch_size`` keeps the gaps closed)."""
    last = length - patch_size
    if last < 0:
        raise ValueError(f"a side of {length} px (padding included) is smaller than the patch ({patch_size} px).")
    positions = set(range(offset % stride, last + 1, stride)) | {0, last}
    return torch.tensor(sorted(positions), dtype=torch.long)


def gaussian_window(patch_size: int, rho: float | None) -> torch.Tensor:
    """(P, P) weights exp(-(u^2 + v^2) / (2 rho^2)) over u, v in [-1, 1]; ``rho`` ``None``: all ones."""
    if rho is None or patch_size == 1:
        return torch.ones(patch_size, patch_size, dtype=torch.float64)
    u = torch.linspace(-1.0, 1.0, patch_size, dtype=torch.float64)
    w = torch.exp(-0.5 * (u / rho) ** 2)
    return w[:, None] * w[None, :]


def window_support(patch_size: int, rho: float | None, cutoff: float | None) -> torch.Tensor:
    """The offsets (along one side of a patch) where the 1-D Gaussian window is at least ``cutoff`` times its peak:
    the window is separable, so its support is the square of these. ``cutoff`` ``None`` or 0: every offset."""
    weights = gaussian_window(patch_size, rho)[patch_size // 2]
    if not cutoff:
        return torch.arange(patch_size)
    return (weights >= cutoff * weights.max()).nonzero().squeeze(1)


def support_columns(patch_size: int, channels: int, support: torch.Tensor) -> torch.Tensor:
    """Columns of a patch row (channels first, as `unfold_all` orders them) whose pixels lie in ``support`` x
    ``support``."""
    rows = support[:, None] * patch_size + support[None, :]
    return (torch.arange(channels)[:, None, None] * patch_size**2 + rows[None]).reshape(-1)


def covers(length: int, padding: int, positions: torch.Tensor, support: torch.Tensor) -> bool:
    """Whether the ``support`` offsets of patches at ``positions`` (corners, padded coordinates) cover every pixel
    of the unpadded side ``[padding, padding + length)``."""
    covered = torch.zeros(length + 2 * padding + len(support) + int(support.max()) + 1, dtype=torch.bool)
    covered[(positions[:, None] + support[None, :]).reshape(-1)] = True
    return bool(covered[padding : padding + length].all())


def patch_index(height: int, width: int, channels: int, patch_size: int, rows: torch.Tensor, cols: torch.Tensor):
    """Flat indices (M, C·P·P) into a (C, H, W) image of the patches with corners ``rows x cols`` (raster order),
    channels first as `unfold_all` orders them."""
    p = torch.arange(patch_size)
    within = torch.arange(channels)[:, None, None] * (height * width) + p[None, :, None] * width + p[None, None, :]
    corners = rows[:, None] * width + cols[None, :]
    return corners.reshape(-1, 1) + within.reshape(1, -1)


# ------------------------------------------------------------------------------------------------------------------
# candidate search


def _nearest(points: torch.Tensor, centroids: torch.Tensor, chunk_size: int = 16384) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean) of every row of ``points``."""
    half_norms = 0.5 * centroids.square().sum(1)
    out = torch.empty(points.shape[0], dtype=torch.long, device=points.device)
    for start in range(0, points.shape[0], chunk_size):
        scores = torch.addmm(half_norms, points[start : start + chunk_size], centroids.T, beta=-1.0)
        out[start : start + chunk_size] = scores.argmax(1)
    return out


def kmeans(points: torch.Tensor, num_clusters: int, iterations: int, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means of the rows of ``points``, initialised with a seeded random subset; empty clusters dropped.
    Returns the centroids (C' <= ``num_clusters``, d). Deterministic for a given input and seed."""
    generator = torch.Generator().manual_seed(seed)
    num_clusters = min(num_clusters, points.shape[0])
    first = torch.randperm(points.shape[0], generator=generator)[:num_clusters].to(points.device)
    centroids = points[first].clone()
    for _ in range(iterations):
        assign = _nearest(points, centroids)
        counts = torch.bincount(assign, minlength=centroids.shape[0])
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        keep = counts > 0
        centroids = sums[keep] / counts[keep, None].to(points.dtype)
    return centroids


def _split_large_clusters(
    points: torch.Tensor, centroids: torch.Tensor, assign: torch.Tensor, iterations: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split every cluster of more than twice the mean size into k-means sub-clusters of about the mean size.

    Flat or dark regions give thousands of near-identical patches that k-means puts in one cluster; every query
    there would be compared with all of them. Split, each query still meets its near-identical neighbours (they
    are its candidates' members or in the nearby probed clusters) at a bounded cost."""
    counts = torch.bincount(assign, minlength=centroids.shape[0])
    mean_size = points.shape[0] / centroids.shape[0]
    large = (counts > 2 * mean_size).nonzero().squeeze(1).tolist()
    if not large:
        return centroids, assign
    kept = [centroids[counts <= 2 * mean_size]]
    for cluster in large:
        members = points[assign == cluster]
        kept.append(kmeans(members, math.ceil(len(members) / mean_size), iterations, seed))
    centroids = torch.cat(kept)
    return centroids, _nearest(points, centroids)


@dataclass(frozen=True)
class CandidateIndex:
    """An inverted-file index of one reference set: which references a query is compared with.

    Attributes:
        mean, basis: the PCA of the references' search features (mean (D,), basis (D, d)).
        centroids: the k-means centroids (C, d) in PCA space.
        candidates: for every cluster, the indices of the references in its ``num_probes`` nearest clusters
            (itself included), sorted.
        order: the references sorted by cluster (a permutation of their indices, stable).
        ranges: for every cluster, the ``(start, stop)`` slices of ``order`` that hold its candidates: with the
            references stored in cluster order (`in_cluster_order`), a cluster's candidates are a few contiguous
            blocks, copied much faster than gathered.
    """

    mean: torch.Tensor
    basis: torch.Tensor
    centroids: torch.Tensor
    candidates: list[torch.Tensor]
    order: torch.Tensor | None = None
    ranges: list[list[tuple[int, int]]] | None = None

    @classmethod
    def build(
        cls,
        features: torch.Tensor,
        num_clusters: int | None = None,
        num_probes: int = 4,
        dims: int = 16,
        iterations: int = 10,
        max_training_points: int = 16384,
        seed: int = 0,
    ) -> CandidateIndex:
        """Index the rows of ``features`` (N, D): PCA to ``dims`` dimensions, k-means with ``num_clusters``
        clusters (default: about 2·sqrt(N)) fitted on at most ``max_training_points`` rows (a seeded subset),
        candidate lists of ``num_probes`` clusters each."""
        mean = features.mean(0)
        centred = features - mean
        covariance = (centred.T @ centred).double() / max(1, features.shape[0] - 1)
        _, vectors = torch.linalg.eigh(covariance)
        basis = vectors[:, -min(dims, features.shape[1]) :].flip(1).to(features.dtype)
        projected = centred @ basis
        if num_clusters is None:
            num_clusters = max(1, round(2 * math.sqrt(features.shape[0])))
        training = projected
        if projected.shape[0] > max_training_points:
            subset = torch.randperm(projected.shape[0], generator=torch.Generator().manual_seed(seed))
            training = projected[subset[:max_training_points].to(projected.device)]
        centroids = kmeans(training, num_clusters, iterations, seed)
        assign = _nearest(projected, centroids)
        centroids, assign = _split_large_clusters(projected, centroids, assign, iterations, seed)
        order = torch.argsort(assign, stable=True)
        counts = torch.bincount(assign, minlength=centroids.shape[0]).tolist()
        members = list(torch.split(order, counts))
        probes = min(num_probes, centroids.shape[0])
        between = torch.cdist(centroids, centroids)
        nearest = between.topk(probes, dim=1, largest=False).indices
        candidates = [torch.sort(torch.cat([members[j] for j in row.tolist()])).values for row in nearest]
        starts = [0, *itertools.accumulate(counts)]
        ranges = [[(starts[j], starts[j + 1]) for j in sorted(row.tolist())] for row in nearest]
        return cls(mean=mean, basis=basis, centroids=centroids, candidates=candidates, order=order, ranges=ranges)

    def in_cluster_order(self) -> CandidateIndex:
        """This index for the references stored in ``order``: candidates become positions in that order."""
        positions = [torch.cat([torch.arange(a, b) for a, b in row]) for row in self.ranges]
        device = self.order.device
        return replace(self, candidates=[p.to(device) for p in positions], order=torch.arange(len(self.order)))

    def gather(self, tensor: torch.Tensor, cluster: int) -> torch.Tensor:
        """The rows of ``tensor`` (stored in cluster order) that are ``cluster``'s candidates."""
        blocks = self.ranges[cluster]
        if len(blocks) == 1:
            return tensor[blocks[0][0] : blocks[0][1]]
        return torch.cat([tensor[a:b] for a, b in blocks])

    def to(self, device: torch.device, dtype: torch.dtype) -> CandidateIndex:
        return CandidateIndex(
            mean=self.mean.to(device=device, dtype=dtype),
            basis=self.basis.to(device=device, dtype=dtype),
            centroids=self.centroids.to(device=device, dtype=dtype),
            candidates=[c.to(device) for c in self.candidates],
            order=None if self.order is None else self.order.to(device),
            ranges=self.ranges,
        )

    def assign(self, features: torch.Tensor) -> torch.Tensor:
        """The cluster of every query (rows of ``features`` (M, D)): its nearest centroid in PCA space."""
        return _nearest((features - self.mean) @ self.basis, self.centroids)

    @property
    def mean_candidates(self) -> float:
        return sum(len(c) for c in self.candidates) / max(1, len(self.candidates))


# ------------------------------------------------------------------------------------------------------------------
# reference set


@dataclass(frozen=True)
class ReferencePatches:
    """The reference set of one scale.

    Attributes:
        keys: (N, D) every ``patch_size`` patch of the (zero-padded) image, stride 1, as `unfold_all` orders them,
            followed (N, 2D) by the guide image's patch at the same place when there is a guide image.
        half_norms, guide_half_norms: (N,) ||p_k||^2 / 2 and ||q_k||^2 / 2 (``None`` without guides).
        patch_dim: D.
        patch_size, padding: the patch side and the zero padding of the image on every side, in pixels.
        codes: (N,) border codes (see `border_codes`), ``None`` without padding.
        interior, border: with padding, the references with code 0 (interior queries match only these) and the
            others, as reference sets of their own (without codes and parts).
        index: the [`CandidateIndex`] of the fast path (on ``interior`` when there is padding), ``None``: exact.
            With an index, the references are stored in its cluster order.
    """

    keys: torch.Tensor
    half_norms: torch.Tensor
    patch_dim: int
    patch_size: int
    guide_half_norms: torch.Tensor | None = None
    padding: int = 0
    codes: torch.Tensor | None = None
    interior: ReferencePatches | None = None
    border: ReferencePatches | None = None
    index: CandidateIndex | None = None

    @classmethod
    def from_image(
        cls, image: torch.Tensor, patch_size: int, padding: int = 0, guide_image: torch.Tensor | None = None
    ) -> ReferencePatches:
        """The patches of a (1, C, H, W) image (and of ``guide_image``, the same shape), padded by ``padding``."""
        if not 0 <= padding < patch_size:
            raise ValueError(f"padding must be in [0, patch_size) = [0, {patch_size}), got {padding}.")
        height, width = image.shape[-2:]
        patches = unfold_all(F.pad(image, (padding,) * 4), patch_size)
        keys, guide_half_norms = patches, None
        if guide_image is not None:
            guides = unfold_all(F.pad(guide_image, (padding,) * 4), patch_size)
            keys, guide_half_norms = torch.cat([patches, guides], dim=1), 0.5 * guides.square().sum(1)
        whole = cls(keys, 0.5 * patches.square().sum(1), patches.shape[1], patch_size, guide_half_norms)
        if not padding:
            return whole
        rows = torch.arange(height + 2 * padding - patch_size + 1)
        cols = torch.arange(width + 2 * padding - patch_size + 1)
        codes = border_codes(height, width, patch_size, padding, rows, cols)
        inner = codes == 0
        return replace(
            whole,
            padding=padding,
            codes=codes,
            interior=whole.subset(inner),
            border=replace(whole.subset(~inner), codes=codes[~inner]),
        )

    def subset(self, selection: torch.Tensor) -> ReferencePatches:
        """The references ``selection`` (a boolean mask or indices) picks, without codes, parts or index."""
        return ReferencePatches(
            keys=self.keys[selection],
            half_norms=self.half_norms[selection],
            patch_dim=self.patch_dim,
            patch_size=self.patch_size,
            guide_half_norms=None if self.guide_half_norms is None else self.guide_half_norms[selection],
        )

    @property
    def num_patches(self) -> int:
        return self.keys.shape[0]

    @property
    def patches(self) -> torch.Tensor:
        return self.keys[:, : self.patch_dim]

    @property
    def guides(self) -> torch.Tensor | None:
        return None if self.guide_half_norms is None else self.keys[:, self.patch_dim :]

    def with_index(self, **options) -> ReferencePatches:
        """This set with a [`CandidateIndex`] (options of `CandidateIndex.build`) over its guides (or its patches
        when it has none); with padding, over the interior references (border queries are few: exact)."""
        if self.interior is not None:
            return replace(self, interior=self.interior.with_index(**options))
        features = self.guides if self.guides is not None else self.patches
        index = CandidateIndex.build(features, **options)
        # a set has no order of its own: stored by cluster, each cluster's candidates are contiguous blocks
        return replace(self.subset(index.order), index=index.in_cluster_order())

    def to(self, device: torch.device | str, dtype: torch.dtype) -> ReferencePatches:
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device=device, dtype=dtype)

        return replace(
            self,
            keys=move(self.keys),
            half_norms=move(self.half_norms),
            guide_half_norms=move(self.guide_half_norms),
            codes=None if self.codes is None else self.codes.to(device),
            interior=None if self.interior is None else self.interior.to(device, dtype),
            border=None if self.border is None else self.border.to(device, dtype),
            index=None if self.index is None else self.index.to(device, dtype),
        )


# ------------------------------------------------------------------------------------------------------------------
# posterior means


def _scaled_queries(queries: torch.Tensor, guides: torch.Tensor | None, inv_var: float, inv_guide_var: float):
    """[z / sigma^2, b / tau^2]: dotted with a reference's keys [p, q] it gives the logits' data terms."""
    if guides is None:
        return queries * inv_var
    return torch.cat([queries * inv_var, guides * inv_guide_var], dim=1)


def _offsets(reference: ReferencePatches, inv_var: float, inv_guide_var: float) -> torch.Tensor:
    """||p||^2 / (2 sigma^2) + ||q||^2 / (2 tau^2) of every reference: subtracted from the data terms."""
    offsets = reference.half_norms * inv_var
    if reference.guide_half_norms is not None and inv_guide_var:
        offsets = offsets + reference.guide_half_norms * inv_guide_var
    return offsets


def _values(reference: ReferencePatches, columns: torch.Tensor | None) -> torch.Tensor:
    """The reference patches' ``columns`` (every column when ``None``): what the posterior averages."""
    return reference.patches if columns is None else reference.keys.index_select(1, columns.to(reference.keys.device))


def _posterior(scaled: torch.Tensor, features: torch.Tensor, reference: ReferencePatches, offsets: torch.Tensor,
               chunk_size: int, columns: torch.Tensor | None = None) -> torch.Tensor:
    """Posterior means (of the patch ``columns``) of the (scaled) queries over ``reference``, every reference or,
    with its index, the candidates of each query's cluster (found from ``features``, the queries' guides or
    patches)."""
    keys = reference.keys[:, : scaled.shape[1]]
    index = reference.index
    if index is None:
        patches = _values(reference, columns)
        out = torch.empty(scaled.shape[0], patches.shape[1], dtype=scaled.dtype, device=scaled.device)
        for start in range(0, scaled.shape[0], chunk_size):
            logits = torch.addmm(offsets, scaled[start : start + chunk_size], keys.T, beta=-1.0)
            out[start : start + chunk_size] = torch.softmax(logits, dim=1) @ patches
        return out
    clusters = index.assign(features)
    order = torch.argsort(clusters)
    counts = torch.bincount(clusters, minlength=len(index.candidates)).tolist()
    ordered = scaled[order]  # one gather; each cluster's queries are then a contiguous slice
    value_dims = reference.patch_dim if columns is None else len(columns)
    columns = None if columns is None else columns.to(scaled.device)
    out = torch.empty(scaled.shape[0], value_dims, dtype=scaled.dtype, device=scaled.device)
    start = 0
    for cluster, count in enumerate(counts):
        if not count:
            continue
        candidate_keys = index.gather(keys, cluster)
        candidate_offsets = index.gather(offsets, cluster)
        if columns is None:
            candidate_values = candidate_keys[:, : reference.patch_dim]
        else:
            candidate_values = candidate_keys.index_select(1, columns)
        for first in range(start, start + count, chunk_size):
            last = min(first + chunk_size, start + count)
            logits = torch.addmm(candidate_offsets, ordered[first:last], candidate_keys.T, beta=-1.0)
            out[first:last] = torch.softmax(logits, dim=1) @ candidate_values
        start += count
    result = torch.empty_like(out)
    result[order] = out
    return result


def posterior_mean_patches(
    queries: torch.Tensor,
    sigma: float,
    reference: ReferencePatches,
    guides: torch.Tensor | None = None,
    tau: float | None = None,
    codes: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[p | z] for every row z of ``queries`` (M, D): the softmax-weighted average of the reference patches.

    ``guides`` (M, D) are the queries' guide patches, matched against ``reference.guides`` with noise level ``tau``
    (both or neither); ``codes`` (M,) their border codes (with a padded reference set). With an index each query is
    compared with its candidates only (see [`CandidateIndex`]), else with every reference; ``chunk_size`` queries
    at a time. Interior queries (code 0) are compared with the interior references only and border queries, which
    are few, with the border references exactly. ``columns`` (indices into D): average only these columns of the
    patches, (M, len(columns)) out; the weights still come from whole patches.
    """
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}.")
    if (guides is None) != (tau is None) or (guides is not None and reference.guides is None):
        raise ValueError("guides and tau go together, and need a reference set with guides.")
    inv_var = 1.0 / (sigma * sigma)
    inv_guide_var = 0.0 if tau is None else 1.0 / (tau * tau)
    scaled = _scaled_queries(queries, guides, inv_var, inv_guide_var)
    features = guides if guides is not None else queries

    def solve(rows, part: ReferencePatches) -> torch.Tensor:
        offsets = _offsets(part, inv_var, inv_guide_var)
        return _posterior(scaled[rows], features[rows], part, offsets, chunk_size, columns)

    if reference.codes is None or codes is None:
        return solve(slice(None), reference)
    out = queries.new_empty(queries.shape[0], reference.patch_dim if columns is None else len(columns))
    inner = codes == 0
    if inner.any():
        # no interior reference at all (a tiny image): then no reference shares the code, and all are matched
        interior = reference.interior if reference.interior.num_patches else reference.subset(slice(None))
        out[inner] = solve(inner, interior)
    outer = ~inner
    if outer.any():
        border = reference.border
        rows = outer.nonzero().squeeze(1)
        offsets = _offsets(border, inv_var, inv_guide_var)
        keys = border.keys[:, : scaled.shape[1]]
        values = _values(border, columns)
        for first in range(0, len(rows), chunk_size):
            chunk = rows[first : first + chunk_size]
            logits = torch.addmm(offsets, scaled[chunk], keys.T, beta=-1.0)
            mismatch = codes[chunk, None] != border.codes[None, :]
            unmatched = mismatch.all(1)
            logits.masked_fill_(mismatch, -math.inf)
            estimate = torch.softmax(logits, dim=1) @ values
            if unmatched.any():  # no reference shares the code: match them all
                estimate[unmatched] = solve(chunk[unmatched], reference.subset(slice(None)))
            out[chunk] = estimate
    return out


def wrap_pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """``image`` (..., H, W) padded by ``pad`` pixels on every side with its own opposite border (a torus), for any
    ``pad`` (also more than a side: the image repeats).

    Example:
        >>> import torch
        >>> wrap_pad(torch.arange(3.0).reshape(1, 1, 1, 3), 2)[0, 0]
        tensor([[1., 2., 0., 1., 2., 0., 1.],
                [1., 2., 0., 1., 2., 0., 1.],
                [1., 2., 0., 1., 2., 0., 1.],
                [1., 2., 0., 1., 2., 0., 1.],
                [1., 2., 0., 1., 2., 0., 1.]])
    """
    height, width = image.shape[-2:]
    rows = torch.arange(-pad, height + pad, device=image.device) % height
    cols = torch.arange(-pad, width + pad, device=image.device) % width
    return image.index_select(-2, rows).index_select(-1, cols)


def posterior_mean_image(
    noisy: torch.Tensor,
    sigma: float,
    reference: ReferencePatches,
    guide: torch.Tensor | None = None,
    tau: float | None = None,
    stride: int = 1,
    offset: tuple[int, int] = (0, 0),
    rho: float | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    window_cutoff: float | None = None,
    circular: bool = False,
) -> torch.Tensor:
    """The image estimate of ``noisy`` (B, C, H, W) = clean + sigma·noise: the posterior mean of its patches (every
    patch of the padded image, or a grid of ``stride`` shifted by ``offset``), averaged at every pixel over the
    patches that cover it with a Gaussian window of width ``rho``. ``guide`` (B, C, H, W) is the image whose patches
    are matched against the reference's guides with noise ``tau``.

    ``window_cutoff`` (an approximation; ``None``: exact) drops the pixels of each patch where the window is below
    that fraction of its peak, so that only the rest of the posterior mean is computed (with a narrow window, a few
    pixels around the centre); where the kept pixels would leave a pixel of the image uncovered, nothing is dropped.

    ``circular``: the image is a torus (for tileable output). It is padded by P - 1 pixels with its own opposite
    borders (`wrap_pad`), so every pixel is covered by all P x P patches around it, each of them real (wrapped)
    content: every query is an interior patch and matches the interior references only.
    """
    batch, channels, height, width = noisy.shape
    size, pad = reference.patch_size, reference.padding
    if not 1 <= stride <= size:
        raise ValueError(f"stride must be in [1, patch_size] = [1, {size}], got {stride}.")
    if window_cutoff is not None and not 0 <= window_cutoff < 1:
        raise ValueError(f"window_cutoff must be in [0, 1) or None, got {window_cutoff!r}.")
    if circular:
        pad = size - 1
        noisy = wrap_pad(noisy, pad)
        guide = None if guide is None else wrap_pad(guide, pad)
    elif pad:
        noisy = F.pad(noisy, (pad,) * 4)
        guide = None if guide is None else F.pad(guide, (pad,) * 4)
    padded_height, padded_width = height + 2 * pad, width + 2 * pad
    rows = grid_positions(padded_height, size, stride, offset[0])
    cols = grid_positions(padded_width, size, stride, offset[1])
    if circular:
        interior = reference.codes is not None  # code 0 for every query; no codes: the set has no border patches
        codes = torch.zeros(len(rows) * len(cols), dtype=torch.long, device=noisy.device) if interior else None
    else:
        codes = border_codes(height, width, size, pad, rows, cols).to(noisy.device) if pad else None
    support = window_support(size, rho, window_cutoff)
    if not (covers(height, pad, rows, support) and covers(width, pad, cols, support)):
        support = torch.arange(size)
    columns = None if len(support) == size else support_columns(size, channels, support)
    window = gaussian_window(size, rho).to(device=noisy.device, dtype=noisy.dtype).repeat(channels, 1, 1)
    window = window.reshape(-1) if columns is None else window.reshape(-1)[columns.to(noisy.device)]
    window = window.reshape(1, 1, -1)

    flat = noisy.reshape(batch, -1)
    guide_flat = None if guide is None else guide.reshape(batch, -1)
    total = torch.zeros_like(flat)
    weight = torch.zeros_like(flat[0])
    # chunks of whole rows of query patches, across the batch, so that memory stays bounded for large outputs; the
    # candidate path holds chunk_size x (candidates) logits at most whatever the chunk, so its chunks are larger
    queries_per_chunk = chunk_size * (16 if reference.index is not None else 1)
    rows_per_chunk = max(1, queries_per_chunk // (batch * len(cols)))
    for first_row in range(0, len(rows), rows_per_chunk):
        chunk_rows = rows[first_row : first_row + rows_per_chunk]
        index = patch_index(padded_height, padded_width, channels, size, chunk_rows, cols).to(noisy.device)
        queries = flat[:, index].reshape(-1, index.shape[1])
        guides = None if guide_flat is None else guide_flat[:, index].reshape(-1, index.shape[1])
        chunk_codes = None
        if codes is not None:
            chunk_codes = codes[first_row * len(cols) : (first_row + len(chunk_rows)) * len(cols)].repeat(batch)
        estimate = posterior_mean_patches(queries, sigma, reference, guides, tau, chunk_codes, chunk_size, columns)
        targets = index if columns is None else index[:, columns.to(noisy.device)]
        estimate = (estimate.reshape(batch, -1, targets.shape[1]) * window).reshape(batch, -1)
        total.scatter_add_(1, targets.reshape(1, -1).expand(batch, -1), estimate)
        weight.scatter_add_(0, targets.reshape(-1), window.expand(1, len(targets), -1).reshape(-1))
    image = (total / weight).reshape(batch, channels, padded_height, padded_width)
    return image[..., pad : pad + height, pad : pad + width]
