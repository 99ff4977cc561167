"""fit() is RNG-neutral outside training, whatever it displays, and resumes bit-exactly
from every stage boundary (issue 21 item 4, issue 27 item 1).

The training loader shuffles and augments with torch's global RNG (``Jitter``); so does
the validation loader: nothing it draws may reach the training batches. A run killed at a
stage boundary (or inside an epoch) and resumed in a fresh model must end with the same
weights, optimiser states and history as the uninterrupted run, bit for bit.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from _protopnet_toy import Jitter, squares, tiny_model, with_push
from torch.utils.data import DataLoader

from interp_lib._plumbing import progress as progress_bar
from interp_lib.protopnet.checkpoint import read_checkpoint
from interp_lib.protopnet.train import fit

pytestmark = pytest.mark.filterwarnings("ignore:.*share a source patch")

#: warm-up 0, joint 1, push 2, last layer 3, joint 4, push 5, last layer 6 (convex: one step)
STEPS = 7
N_TRAIN = 48  # 3 batches of 16 an epoch


class _Kill(Exception):
    pass


class _DiesAfter(Jitter):
    """Raises on its ``n``-th item: a process killed inside an epoch."""

    def __init__(self, base, n: int) -> None:
        super().__init__(base)
        self.left = n

    def __getitem__(self, i):
        self.left -= 1
        if self.left < 0:
            raise _Kill
        return super().__getitem__(i)


def _run(path, *, kill_after=None, die_after=None, resume=False, model_seed=0,
         progress=False, val="jitter", own_generator=False, solver="convex"):  # fmt: skip
    data = squares(N_TRAIN)
    train_set = Jitter(data) if die_after is None else _DiesAfter(data, die_after)
    gen = torch.Generator().manual_seed(5) if own_generator else None
    train = DataLoader(train_set, batch_size=16, shuffle=True, generator=gen)
    val_set = squares(16, seed=1)
    val_ld = {
        "jitter": DataLoader(Jitter(val_set), batch_size=8, shuffle=True),  # draws a lot
        "plain": DataLoader(val_set, batch_size=8),  # draws one worker seed
    }[val]

    def callback(rec):
        if kill_after is not None and rec.step == kill_after:
            raise _Kill

    model = tiny_model(seed=model_seed)
    schedule = with_push(epochs=3, lr_step_size=1, last_layer_solver=solver, steps_per_epoch=None)
    history = fit(model, train, val_loader=val_ld, push_loader=DataLoader(data, batch_size=16),
                  schedule=schedule,
                  checkpoint=path, resume=resume, callback=callback, restore_best=False,
                  progress=progress, seed=123)  # fmt: skip
    return model, history


def _records(history):
    """The history without its wall-clock times."""
    return [{k: v for k, v in r.to_state().items() if k != "seconds"} for r in history]


def _assert_same(a, b, where="checkpoint"):
    """Equal nested payloads: tensors bit for bit; wall-clock times skipped."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            if k != "seconds":
                _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _assert_same_model(a, b):
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("own_generator", [False, True])
def test_a_progress_bar_draws_nothing(own_generator):
    """Making a bar over a loader and iterating it draws exactly what iterating the loader
    draws (tqdm.auto's bar used to make an extra iterator, which draws a worker seed)."""
    gen = torch.Generator().manual_seed(1) if own_generator else None
    loader = DataLoader(squares(8), batch_size=4, shuffle=True, generator=gen)

    def state():
        return (gen if own_generator else torch.random.default_generator).get_state()

    torch.manual_seed(0)
    plain = [y for _, y in loader]
    after_plain = state()
    if own_generator:
        gen.manual_seed(1)
    torch.manual_seed(0)
    before = state()
    bar = progress_bar(loader, True, "test")
    assert torch.equal(state(), before) and len(bar) == 2  # making the bar drew nothing
    shown = [y for _, y in bar]
    assert torch.equal(state(), after_plain)
    assert all(torch.equal(a, b) for a, b in zip(plain, shown, strict=True))


@pytest.fixture(scope="module", autouse=True, params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Every test of the drill runs at one torch thread and again at two (torch's default
    here): the thread count changes the order of floating-point sums, so a run repeats
    bit for bit only under one count, and the uninterrupted reference, the killed run and
    the resumed run must all see the same one. Module-scoped and autouse, so the
    module-scoped ``reference`` is computed under it too. (A function-scoped pin to one
    thread used to apply to the killed and resumed runs but not to the module-scoped
    reference, which pytest builds first: at two default threads every kill case
    differed in the last bits.)"""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, threads):
    """The uninterrupted run: its model, history and last checkpoint."""
    path = tmp_path_factory.mktemp("ref") / "ref.pt"
    model, history = _run(path)
    return model, history, read_checkpoint(path)


@pytest.mark.slow  # trains a tiny ProtoPNet twice
@pytest.mark.parametrize("own_generator", [False, True])
def test_the_progress_bar_never_changes_the_model(tmp_path, own_generator):
    """``progress`` only displays: the same seed gives the same weights and logs with the
    bars on or off, whether the training loader shuffles from the global generator or its
    own (the zoo's)."""
    off, h_off = _run(tmp_path / "off.pt", progress=False, own_generator=own_generator)
    on, h_on = _run(tmp_path / "on.pt", progress=True, own_generator=own_generator)
    _assert_same_model(off, on)
    assert _records(h_off) == _records(h_on)
    _assert_same(read_checkpoint(tmp_path / "off.pt"), read_checkpoint(tmp_path / "on.pt"))


@pytest.mark.slow  # trains a tiny ProtoPNet twice
def test_what_the_validation_loader_draws_never_reaches_training(tmp_path):
    """A validation loader that shuffles and augments from torch's global generator trains
    the same weights as one that does not: evaluation is RNG-neutral."""
    plain, h_plain = _run(tmp_path / "plain.pt", val="plain")
    drawing, h_drawing = _run(tmp_path / "drawing.pt", val="jitter")
    _assert_same_model(plain, drawing)
    assert [r.train for r in h_plain] == [r.train for r in h_drawing]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_after", "die_after"),
    [
        pytest.param(0, None, id="warmup->joint"),
        pytest.param(1, None, id="joint->push"),
        pytest.param(2, None, id="push->last_layer"),
        pytest.param(3, None, id="last_layer->joint"),
        pytest.param(5, None, id="push->final_last_layer"),
        pytest.param(None, 2 * N_TRAIN + 20, id="inside_joint_epoch_2"),
        pytest.param(None, 20, id="inside_warmup"),
    ],
)
def test_resume_from_every_stage_boundary_is_bit_exact(tmp_path, reference, kill_after,
                                                       die_after):  # fmt: skip
    path = tmp_path / "run.pt"
    with pytest.raises(_Kill):
        _run(path, kill_after=kill_after, die_after=die_after)
    done = (kill_after + 1) if kill_after is not None else None
    model_seed = 99  # a fresh process builds a fresh model: overwritten by the resume
    if die_after is not None and die_after < N_TRAIN:
        assert not path.exists()  # killed before the first checkpoint: resume starts afresh
        model_seed = 0  # from the model the script builds
    else:
        assert read_checkpoint(path)["next_step"] == (done if done is not None else 4)
    _assert_resumes_like(reference, path, model_seed)


def _assert_resumes_like(reference, path, model_seed: int = 99) -> None:
    """Resume the run at ``path``: it ends exactly as the uninterrupted ``reference``."""
    ref_model, ref_history, ref_ckpt = reference
    model, history = _run(path, resume=True, model_seed=model_seed)
    _assert_same_model(ref_model, model)
    assert _records(history) == _records(ref_history)
    # weights, optimiser and scheduler states, RNG states, best state, history
    _assert_same(ref_ckpt, read_checkpoint(path))


class _KillOnCall:
    """Wraps a function; its call number ``n + 1`` raises: a kill at that moment."""

    def __init__(self, real, n: int) -> None:
        self.real, self.left = real, n

    def __call__(self, *args, **kwargs):
        self.left -= 1
        if self.left < 0:
            raise _Kill
        return self.real(*args, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "name", "calls", "next_step"),
    [
        # the first convex solve, right after the first push (step 2 is checkpointed)
        pytest.param("interp_lib.protopnet.last_layer", "fit_last_layer", 0, 3,
                     id="inside_last_layer_solve"),
        # the save of step 4 dies before its rename: step 3's checkpoint stays
        pytest.param("os", "replace", 4, 4, id="inside_a_save"),
    ],
)  # fmt: skip
def test_resume_after_a_kill_inside_the_last_layer_solve_or_a_save(
    tmp_path, reference, monkeypatch, module, name, calls, next_step
):
    target = importlib.import_module(module)
    monkeypatch.setattr(target, name, _KillOnCall(getattr(target, name), calls))
    path = tmp_path / "run.pt"
    with pytest.raises(_Kill):
        _run(path)
    monkeypatch.undo()
    assert read_checkpoint(path)["next_step"] == next_step
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary file left
    _assert_resumes_like(reference, path)


@pytest.mark.slow
def test_resume_after_a_push_with_the_adam_last_layer_on_push_images(tmp_path):
    """``adam_push`` reads the push images' similarities again when resumed after a push."""
    ref, ref_h = _run(tmp_path / "ref.pt", solver="adam_push")
    with pytest.raises(_Kill):
        _run(tmp_path / "run.pt", kill_after=2, solver="adam_push")
    model, h = _run(tmp_path / "run.pt", resume=True, model_seed=99, solver="adam_push")
    _assert_same_model(ref, model)
    assert _records(h) == _records(ref_h)
    _assert_same(read_checkpoint(tmp_path / "ref.pt"), read_checkpoint(tmp_path / "run.pt"))
