"""Push postconditions: own-class patch exactly, distance 0, idempotent, clear errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from interp_lib.protopnet import push


def latents(model, loader):
    model.eval()
    with torch.no_grad():
        return torch.cat([model.latent(x) for x, _ in loader])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
@pytest.mark.parametrize(("size", "kind"), [(1, "log"), (2, "log"), (1, "cosine")])
def test_push_postconditions(size, kind, make_protopnet, make_images):
    model = make_protopnet(prototype_size=size, similarity=kind)
    loader = DataLoader(make_images(14), batch_size=4, shuffle=False)
    old = model.prototypes.detach().clone()
    model.train()
    result = push(model, loader, progress=False)
    assert model.training  # mode restored
    z = latents(model, loader)
    labels = torch.cat([y for _, y in loader])
    s = size
    for p in range(model.n_prototypes):
        n, (h, w) = int(result.sample_index[p]), result.location[p].tolist()
        # an own-class training patch, exactly
        assert labels[n] == model.prototype_classes[p]
        assert torch.equal(model.prototypes[p], z[n, :, h : h + s, w : w + s])
        # and the nearest one to the prototype before the push (brute force)
        own = z[labels == model.prototype_classes[p]]
        patches = own.unfold(2, s, 1).unfold(3, s, 1).permute(0, 2, 3, 1, 4, 5).flatten(3)
        ref = old[p].flatten()
        if kind == "cosine":
            dist = 1 - torch.nn.functional.cosine_similarity(patches, ref, dim=-1)
        else:
            dist = ((patches - ref) ** 2).sum(-1)
        assert math.isclose(result.distance[p].item(), dist.min().item(), abs_tol=1e-5)
    # distance 0 / top similarity on the source image
    top = 9.210340 if kind == "log" else 1.0
    idx = torch.arange(model.n_prototypes)
    at_source = result.similarity_map[idx, result.location[:, 0], result.location[:, 1]]
    torch.testing.assert_close(at_source, torch.full_like(at_source, top), rtol=0, atol=1e-5)
    with torch.no_grad():
        out = model.eval().forward_all(
            torch.stack([loader.dataset[i][0] for i in result.sample_index])
        )
    own_min = out.min_distances[idx, idx]
    assert (own_min <= 1e-5).all()
    assert result.box.shape == result.activation_box.shape == (model.n_prototypes, 4)
    assert result.image_size == (16, 16)


@pytest.mark.slow
def test_push_is_idempotent(make_protopnet, make_images):
    model = make_protopnet(1)
    loader = DataLoader(make_images(14), batch_size=5, shuffle=False)
    first = push(model, loader, progress=False)
    protos = model.prototypes.detach().clone()
    second = push(model, loader, progress=False)
    assert torch.equal(model.prototypes, protos)
    assert torch.equal(first.sample_index, second.sample_index)
    assert torch.equal(first.location, second.location)
    assert (second.distance <= 1e-5).all()


def test_batch_size_does_not_change_the_choice(make_protopnet, make_images):
    a, b = make_protopnet(2), make_protopnet(2)
    ra = push(a, DataLoader(make_images(14), batch_size=3), progress=False)
    rb = push(b, DataLoader(make_images(14), batch_size=14), progress=False)
    assert torch.equal(ra.sample_index, rb.sample_index)
    assert torch.equal(ra.location, rb.location)


def test_duplicate_prototypes_warn(make_protopnet, make_images):
    model = make_protopnet(3)
    with torch.no_grad():
        model.prototypes[1] = model.prototypes[0]
    with pytest.warns(UserWarning, match="share a source patch") as record:
        result = push(model, DataLoader(make_images(14), batch_size=4), progress=False)
    assert record[0].filename == __file__  # points at the caller
    assert [0, 1] in result.duplicates()


def test_no_warning_without_duplicates(make_protopnet, make_images):
    model = make_protopnet(4, n_prototypes_per_class=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        push(model, DataLoader(make_images(14), batch_size=4), progress=False)


def test_clear_errors(make_protopnet, make_images):
    model = make_protopnet(5)
    with pytest.raises(ValueError, match="random order"):
        push(model, DataLoader(make_images(14), batch_size=4, shuffle=True), progress=False)
    with pytest.raises(ValueError, match="no images of classes \\[2\\]"):
        push(model, DataLoader(make_images(14, n_classes=2), batch_size=4), progress=False)
    with pytest.raises(ValueError, match="model's classes"):
        push(model, DataLoader(make_images(14, n_classes=4), batch_size=4), progress=False)
    with pytest.raises(TypeError, match="ProtoPNet"):
        push(torch.nn.Linear(2, 2), DataLoader(make_images(14)), progress=False)


def test_plain_iterable_of_batches(make_protopnet, make_images):
    model = make_protopnet(6)
    ds = make_images(14)
    batches = [(ds.tensors[0][i : i + 7], ds.tensors[1][i : i + 7], "extra") for i in (0, 7)]
    result = push(model, batches, progress=False)
    assert int(result.sample_index.max()) < 14


def test_push_is_vectorised_and_writes_no_files(monkeypatch, make_protopnet, make_images):
    import builtins

    import interp_lib.protopnet.functional as PF

    model = make_protopnet(7, n_prototypes_per_class=5)  # 15 prototypes, 3 batches
    calls = {"gather": 0, "distances": 0}
    gather, distances = PF.gather_patches, model.distances

    def count_gather(*a, **k):
        calls["gather"] += 1
        return gather(*a, **k)

    def count_distances(*a, **k):
        calls["distances"] += 1
        return distances(*a, **k)

    def no_open(*a, **k):
        raise AssertionError("push must not open files")

    monkeypatch.setattr(PF, "gather_patches", count_gather)
    monkeypatch.setattr(model, "distances", count_distances)
    monkeypatch.setattr(builtins, "open", no_open)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        push(model, DataLoader(make_images(12), batch_size=4), progress=False)
    assert calls == {"gather": 3, "distances": 3}  # once per batch, not per prototype


def test_labels_and_batches_are_checked(make_protopnet, make_images):
    model = make_protopnet(8)
    x, y = make_images(6).tensors
    with pytest.raises(ValueError, match="1-D integer"):
        push(model, [(x, y.float())], progress=False)
    with pytest.raises(ValueError, match="one label per image"):
        push(model, [(x, y[:5])], progress=False)
    with pytest.raises(ValueError, match="needs labels"):
        push(model, [x], progress=False)
    with pytest.raises(ValueError, match="same size"):
        push(model, [(x, y), (x[:, :, :12, :12], y)], progress=False)
    with pytest.raises(ValueError, match="move the model"):
        push(model, [(x, y)], device="meta", progress=False)
    before = model.prototypes.detach().clone()
    with pytest.raises(TypeError, match="floating point"):
        push(model, [(x.long(), y)], progress=False)
    assert torch.equal(model.prototypes, before)
    # empty batches are skipped; extra items after the labels are ignored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = push(make_protopnet(8), [(x, y)], progress=False)
        got = push(make_protopnet(8), [(x[:0], y[:0]), (x, y, ["a"] * 6)], progress=False)
    assert torch.equal(ref.sample_index, got.sample_index)
