"""The convex last-layer stage: solved to a certified minimum, at least as accurate as the
released code's 20 Adam passes."""

from __future__ import annotations

import pytest
import torch
from _protopnet_toy import loaders, one_thread, tiny_model, with_push

from interp_lib.protopnet.last_layer import (
    last_layer_objective,
    optimality_residual,
    solve_last_layer,
)
from interp_lib.protopnet.train import fit

_ = one_thread  # autouse fixture: one torch thread for tiny models


def _problem(n=60, p=8, k=4, seed=0, overlap=1.0):
    g = torch.Generator().manual_seed(seed)
    cls = torch.arange(p) % k
    y = torch.randint(0, k, (n,), generator=g)
    own = (cls[None, :] == y[:, None]).double()
    s = 3 * torch.rand(n, p, generator=g, dtype=torch.float64) + 2 * own * overlap
    ident = torch.nn.functional.one_hot(cls, k).double()
    w0 = ident.t() - 0.5 * (1 - ident.t())
    return s, y, w0, 1 - ident.t()


@pytest.mark.parametrize("l1", [1e-4, 3e-2])
def test_solution_is_a_certified_minimum(l1):
    s, y, w0, mask = _problem()
    sol = solve_last_layer(s, y, w0, mask, l1=l1, l2=1e-3, tol=1e-7)
    assert sol.converged and sol.residual <= 1e-7
    w = sol.weight
    # subgradient optimality, checked independently with autograd
    wv = w.clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(s @ wv.t(), y) + 0.5e-3 * (wv * wv).sum()
    (g,) = torch.autograd.grad(ce, wv)
    m = mask.bool()
    assert g[~m].abs().max() <= 1e-7  # own-class weights: no penalty, zero gradient
    nz = m & (w != 0)
    assert ((g[nz] + l1 * torch.sign(w[nz])).abs() <= 1e-7).all()
    assert (g[m & (w == 0)].abs() <= l1 + 1e-7).all()
    if l1 > 1e-2:
        assert (w[m] == 0).any()  # a strong L1 zeroes off-class weights exactly
    # no nearby point is better
    f = last_layer_objective(w, s, y, mask, l1=l1, l2=1e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        d = 1e-3 * torch.randn(w.shape, generator=gen, dtype=w.dtype)
        assert last_layer_objective(w + d, s, y, mask, l1=l1, l2=1e-3) >= f - 1e-12
    assert sol.objective == pytest.approx(float(f), rel=1e-12)
    # the residual helper agrees with the solver's report
    r = optimality_residual(w, s, y, mask, l1=l1, l2=1e-3).abs().max()
    assert float(r) == pytest.approx(sol.residual)


@pytest.mark.slow
def test_start_point_does_not_matter_and_dtype_is_kept():
    s, y, w0, mask = _problem(seed=3)
    a = solve_last_layer(s, y, w0.float(), mask, tol=1e-8)
    b = solve_last_layer(s, y, torch.zeros_like(w0).float(), mask, tol=1e-8)
    assert a.weight.dtype == torch.float32
    # strongly convex (ridge 1e-3): both reach the one minimum, |W - W*| <= tol / l2
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=2e-5)


def test_bad_inputs_are_refused():
    s, y, w0, mask = _problem()
    with pytest.raises(ValueError, match="labels must lie"):
        solve_last_layer(s, y + 10, w0, mask)
    with pytest.raises(ValueError, match=r"\(N, P\)"):
        solve_last_layer(s[0], y, w0, mask)
    with pytest.raises(ValueError, match="l1_mask"):
        solve_last_layer(s, y, w0, mask[:2])
    with pytest.raises(ValueError, match="NaN"):
        solve_last_layer(s * float("nan"), y, w0, mask)
    with pytest.raises(ValueError, match="no rows"):
        solve_last_layer(s[:0], y[:0], w0, mask)


def _final_val_accuracy(solver: str) -> tuple[float, object]:
    model = tiny_model(seed=0)
    train, val, push_ld = loaders()
    schedule = with_push(epochs=3, last_layer_solver=solver, last_layer_passes=20)
    h = fit(model, train, val_loader=val, push_loader=push_ld, schedule=schedule,
            restore_best=False, progress=False)  # fmt: skip
    return h[-1].val["accuracy"], (model, push_ld, h)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
def test_fit_last_layer_stage_reaches_the_minimum_and_beats_adam():
    acc_convex, (model, push_ld, h) = _final_val_accuracy("convex")
    acc_adam, _ = _final_val_accuracy("adam")
    assert acc_convex >= acc_adam
    # after the stage the last layer is at the minimum of its problem on the push images
    last = h[-1]
    assert last.stage.value == "last_layer" and last.train["residual"] <= 1e-6
    feats = []
    hook = model.last_layer.register_forward_hook(lambda _m, i, _o: feats.append(i[0]))
    x, y = push_ld.dataset[:]
    with torch.no_grad():
        model(x)
    hook.remove()
    w = model.last_layer.weight.detach()
    r = optimality_residual(w.double(), feats[0].double(), y, 1 - model.class_identity.t(),
                            l1=1e-4, l2=1e-3)  # fmt: skip
    assert float(r.abs().max()) <= 1e-5  # float32 weights of a float64 solution


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
def test_solve_after_a_push_reuses_the_push_latents(monkeypatch):
    """A convex solve right after a push takes its similarities from the latent maps the
    push computed: the same numbers as a pass over the images, without that pass (made
    only when the maps are too large to keep)."""
    import importlib

    from interp_lib.protopnet import _loops
    from interp_lib.protopnet import _runtime as rt

    push_module = importlib.import_module("interp_lib.protopnet.push")
    passes = []
    orig = _loops.last_layer_inputs

    def spy(*args, **kwargs):
        passes.append(1)
        return orig(*args, **kwargs)

    monkeypatch.setattr(_loops, "last_layer_inputs", spy)

    def run():
        model = tiny_model(seed=0)
        train, val, push_ld = loaders()
        h = fit(model, train, val_loader=val, push_loader=push_ld,
                schedule=with_push(epochs=3, last_layer_solver="convex"),
                restore_best=False, progress=False)  # fmt: skip
        return h

    h = run()
    n_solves = sum(r.stage.value == "last_layer" for r in h)
    assert n_solves >= 2 and passes == []
    # the kept similarities are exactly those of a pass over the push images
    model = tiny_model(seed=0)
    _, _, push_ld = loaders()
    ctx = _loops.PassContext(torch.device("cpu"), None, False, rt.DistInfo(False), False)
    _, kept = _loops.push_pass(model, push_ld, ctx, keep_last_layer_inputs=True)
    sims, labels = orig(model, push_ld, ctx)
    assert torch.equal(kept[0], sims) and torch.equal(kept[1], labels)
    assert _loops.push_pass(model, push_ld, ctx)[1] is None  # not asked: nothing kept
    monkeypatch.setattr(push_module, "KEEP_LATENTS_BYTES", 0)  # nothing fits: a pass
    h = run()
    assert len(passes) == n_solves
    assert h[-1].stage.value == "last_layer" and h[-1].train["residual"] <= 1e-6


# ------------------------------------------------------------------ the three rules


def _shared_part_problem(n=300, seed=0):
    """Class 1's own prototypes are weak, and a prototype of class 0 fires on classes 0
    and 1 (a part both share): the unconstrained optimum votes for class 1 with it."""
    g = torch.Generator().manual_seed(seed)
    k, per = 3, 2
    cls = torch.arange(k * per) // per
    y = torch.randint(0, k, (n,), generator=g)
    s = torch.rand(n, k * per, generator=g, dtype=torch.float64)
    own = (cls[None, :] == y[:, None]).double()
    s = s + 2.0 * own * torch.tensor([1, 1, 0.1, 0.1, 1, 1], dtype=torch.float64)
    s[:, 0] += 2.0 * (y <= 1).double()  # prototype 0 (class 0) also fires on class 1
    ident = torch.nn.functional.one_hot(cls, k).double()
    return s, y, ident.t() - 0.5 * (1 - ident.t()), 1 - ident.t()


def test_nonpositive_solution_is_a_certified_constrained_minimum():
    s, y, w0, mask = _shared_part_problem()
    free = solve_last_layer(s, y, w0, mask, tol=1e-8)
    assert (free.weight[mask.bool()] > 0.1).any()  # the unconstrained optimum: + off-class
    sol = solve_last_layer(s, y, w0, mask, tol=1e-8, nonpositive=mask.bool())
    assert sol.converged and sol.residual <= 1e-8
    w, m, l1 = sol.weight, mask.bool(), 1e-4
    assert (w[m] <= 0).all()
    # KKT conditions checked independently with autograd
    wv = w.clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(s @ wv.t(), y) + 0.5e-3 * (wv * wv).sum()
    (g,) = torch.autograd.grad(ce, wv)
    assert g[~m].abs().max() <= 1e-8
    neg = m & (w < 0)
    assert ((g[neg] - l1).abs() <= 1e-8).all()
    assert (g[m & (w == 0)] <= l1 + 1e-8).all()
    assert (m & (w == 0)).any()  # the constraint is active somewhere
    # no nearby feasible point is better, and the constrained minimum costs more
    f = last_layer_objective(w, s, y, mask, l1=l1, l2=1e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        d = 1e-3 * torch.randn(w.shape, generator=gen, dtype=w.dtype)
        v = torch.where(m, (w + d).clamp_max(0), w + d)
        assert last_layer_objective(v, s, y, mask, l1=l1, l2=1e-3) >= f - 1e-12
    assert sol.objective >= free.objective
    r = optimality_residual(w, s, y, mask, l1=l1, l2=1e-3, nonpositive=m)
    assert float(r.abs().max()) == pytest.approx(sol.residual)
    # a positive off-class weight is infeasible: infinite residual
    bad = w.clone()
    bad[m.nonzero()[0].tolist()[0], m.nonzero()[0].tolist()[1]] = 0.1
    assert float(optimality_residual(bad, s, y, mask, nonpositive=m).abs().max()) == float("inf")


def test_nonpositive_must_lie_inside_the_l1_mask():
    s, y, w0, mask = _problem()
    with pytest.raises(ValueError, match="subset of l1_mask"):
        solve_last_layer(s, y, w0, mask, nonpositive=torch.ones_like(mask).bool())
    with pytest.raises(ValueError, match="nonpositive must have shape"):
        solve_last_layer(s, y, w0, mask, nonpositive=mask[:1].bool())


def test_adam_rule_runs_the_released_codes_steps():
    from interp_lib.protopnet.last_layer import adam_last_layer, fit_last_layer

    s, y, w0, mask = _shared_part_problem(n=100)
    sol = adam_last_layer(s, y, w0, mask, passes=3, batch_size=32, lr=1e-4)
    assert sol.iterations == 3 * 4  # ceil(100 / 32) steps a pass
    # Adam moves each weight by at most about lr per step
    assert (sol.weight - w0).abs().max() <= 1e-4 * sol.iterations * 1.01
    # far from the convex optimum: a large subgradient residual
    assert sol.residual > 1e-3 and sol.weight.dtype == w0.dtype
    again = fit_last_layer(s, y, w0, mask, rule="adam", passes=3, batch_size=32)
    torch.testing.assert_close(again.weight, sol.weight, rtol=0, atol=0)  # seeded order
    assert fit_last_layer(s, y, w0, mask, rule="adam", passes=0).weight.equal(w0)
    nonpos = fit_last_layer(s, y, w0, mask, rule="convex_nonpositive")
    assert (nonpos.weight[mask.bool()] <= 0).all()
    with pytest.raises(ValueError, match="rule must be one of"):
        fit_last_layer(s, y, w0, mask, rule="sgd")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*share a source patch")
@pytest.mark.filterwarnings("ignore:the schedule's epoch counts")
@pytest.mark.parametrize("solver", ["convex_nonpositive", "adam_push"])
def test_fit_runs_every_last_layer_rule(solver):
    model = tiny_model(seed=0)
    train, val, push_ld = loaders()
    schedule = with_push(epochs=3, last_layer_solver=solver, last_layer_passes=4)
    h = fit(model, train, val_loader=val, push_loader=push_ld, schedule=schedule,
            restore_best=False, progress=False)  # fmt: skip
    stages = [r.stage.value for r in h]
    assert stages.count("last_layer") == stages.count("push")  # one step per push
    w = model.last_layer.weight.detach()
    off = (1 - model.class_identity.t()).bool()
    if solver == "convex_nonpositive":
        assert (w[off] <= 0).all() and h[-1].train["residual"] <= 1e-6
    else:
        n_rows = len(push_ld.dataset)
        per_pass = -(-n_rows // train.batch_size)
        assert h[-1].train["iterations"] == 4 * per_pass
        assert (w[off] < 0).all()  # a few Adam steps from -0.5 stay negative
