"""The small classifiers used by the ID chapters."""

import pytest
import torch

from interp_lib.models import accuracy, train_classifier
from interp_lib.networks import cnn_classifier
from interp_lib.profile import default_checkpoints

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread


def quadrant_data(n=160, size=16, seed=0):
    """Class = the quadrant holding a bright square: easy, needs spatial features."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.1 * torch.rand(n, 1, size, size, generator=g)
    h = size // 2
    for i, c in enumerate(y.tolist()):
        r, s = (c // 2) * h, (c % 2) * h
        x[i, 0, r + 2 : r + 6, s + 2 : s + 6] = 1.0
    return x, y


def test_architecture_and_checkpoints():
    net = cnn_classifier(4, in_channels=1, image_size=16, widths=(4, 8), hidden=(16, 8))
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 4)
    cps = default_checkpoints(net, torch.zeros(1, 1, 16, 16))
    assert cps[0] == "input" and "features.pool1" in cps and "features.pool2" in cps
    assert "fc1" in cps and "fc2" in cps and cps[-1] in ("out", "output")
    with pytest.raises(ValueError, match="divisible"):
        cnn_classifier(4, image_size=30, widths=(4, 8))


@pytest.mark.slow
def test_training_learns_and_shuffled_labels_do_not_generalise():
    torch.manual_seed(0)
    x, y = quadrant_data()
    xt, yt = quadrant_data(seed=1)
    net = cnn_classifier(4, in_channels=1, image_size=16, widths=(4, 8), hidden=(16,))
    hist = train_classifier(net, (x, y), test=(xt, yt), epochs=15, lr=3e-3, progress=False)
    assert hist.final_test_accuracy > 0.9
    assert hist.loss[-1] < hist.loss[0]
    assert accuracy(net, (xt, yt)) == hist.final_test_accuracy
    torch.manual_seed(0)
    net = cnn_classifier(4, in_channels=1, image_size=16, widths=(4, 8), hidden=(16,))
    hist = train_classifier(
        net, (x, y), test=(xt, yt), epochs=5, shuffle_labels=True, progress=False
    )
    assert hist.final_test_accuracy < 0.5


def test_bad_data():
    net = cnn_classifier(2, in_channels=1, image_size=8, widths=(2,))
    with pytest.raises(TypeError, match="Dataset"):
        train_classifier(net, [1, 2, 3], progress=False)


def test_non_finite_loss_raises_the_library_error():
    from interp_lib._plumbing import NonFiniteLossError

    x, y = quadrant_data(n=16)
    x[3] = float("nan")
    net = cnn_classifier(4, in_channels=1, image_size=16, widths=(2,), hidden=())
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 0"):
        train_classifier(net, (x, y), epochs=1, batch_size=16, progress=False)
    assert issubclass(NonFiniteLossError, FloatingPointError)  # old handlers still work


@pytest.mark.slow
def test_seed_may_be_a_generator_and_int_seeds_are_unchanged():
    x, y = quadrant_data(n=32)

    def trained(seed):
        torch.manual_seed(0)
        net = cnn_classifier(4, in_channels=1, image_size=16, widths=(2,), hidden=())
        train_classifier(net, (x, y), epochs=2, batch_size=8, seed=seed, progress=False)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    assert torch.equal(trained(3), trained(torch.Generator().manual_seed(3)))
    assert not torch.equal(trained(3), trained(4))
    net = cnn_classifier(4, in_channels=1, image_size=16, widths=(2,), hidden=())
    state = torch.random.get_rng_state()
    train_classifier(net, (x, y), epochs=1, batch_size=8, seed=None, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is not used


def test_readers_run_on_the_model_device():
    x, y = quadrant_data(n=8)
    net = cnn_classifier(4, in_channels=1, image_size=16, widths=(2,), hidden=())
    with pytest.raises(ValueError, match="move the model first"):
        accuracy(net, (x, y), device="meta")
    assert 0.0 <= accuracy(net, (x, y), device="cpu") <= 1.0


def test_lr_step_and_restore_best():
    """``lr_milestones`` step Adam's learning rate; ``restore_best`` keeps the epoch with
    the best held-out accuracy (the model then scores exactly that accuracy)."""
    x, y = quadrant_data(n=64)
    xv, yv = quadrant_data(n=64, seed=1)

    def net():
        torch.manual_seed(0)
        return cnn_classifier(4, in_channels=1, image_size=16, widths=(2,), hidden=())

    seen = []
    orig = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    m = net()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
        train_classifier(m, (x, y), epochs=4, lr=1e-2, batch_size=32, lr_milestones=(1, 3),
                         lr_gamma=0.5, progress=False)  # fmt: skip
    assert seen == pytest.approx([1e-2] * 2 + [5e-3] * 4 + [2.5e-3] * 2)  # 2 batches/epoch

    # with lr 3 the held-out accuracy goes up and down; the best epoch is restored
    m = net()
    hist = train_classifier(m, (x, y), test=(xv, yv), epochs=6, lr=3.0, batch_size=8,
                            restore_best=True, progress=False)  # fmt: skip
    assert accuracy(m, (xv, yv)) == max(hist.test_accuracy)
    assert max(hist.test_accuracy) > hist.test_accuracy[-1]  # else the test proves nothing
    with pytest.raises(ValueError, match="restore_best"):
        train_classifier(net(), (x, y), epochs=1, restore_best=True, progress=False)
    with pytest.raises(ValueError, match="lr_milestones"):
        train_classifier(net(), (x, y), epochs=1, lr_milestones=(0,), progress=False)


def test_channels_last_trains_the_same_function():
    """``channels_last=True`` changes the memory format of the model and the images, not
    the function: the same seed gives the same weights up to float rounding."""
    x, y = quadrant_data(n=64)

    def trained(channels_last: bool):
        torch.manual_seed(0)
        m = cnn_classifier(4, in_channels=1, image_size=16, widths=(4,), hidden=())
        h = train_classifier(m, (x, y), epochs=2, lr=1e-2, batch_size=16, progress=False,
                             channels_last=channels_last)  # fmt: skip
        return m, h

    plain, h_plain = trained(False)
    last, h_last = trained(True)
    conv = next(p for p in last.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and conv.stride()[1] == 1
    for a, b in zip(plain.parameters(), last.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert h_plain.loss == pytest.approx(h_last.loss, rel=1e-5)
    with pytest.raises(TypeError, match="channels_last"):
        train_classifier(plain, (x, y), epochs=1, channels_last="yes", progress=False)
