import signal

import pytest
import torch

# Test workloads are small; one thread avoids oversubscribing CI's two cores.
torch.set_num_threads(1)

# A test run started in the background by a non-interactive shell (`nohup … &`, some CI runners) inherits
# SIGINT ignored, and so would every process a test starts: the Ctrl-C tests' sweeps would ignore it.
# With Python's own handler here instead, children start with the default disposition (exec resets a
# handled signal, not an ignored one).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


# Every device this machine has: a test about device handling takes the ``device`` fixture and so runs on
# CUDA wherever CUDA exists, instead of a hand-written list that leaves it out.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def _boom():
    raise RuntimeError("boom")


@pytest.fixture
def job_fails_at_lr(monkeypatch):
    """``job_fails_at_lr(lr, fail=…)``: every training step of a job whose ``train.lr`` is ``lr`` calls
    ``fail()`` first (by default: raise RuntimeError("boom")); the other jobs train as usual. The patch
    reaches process-pool workers by fork, and ``monkeypatch.undo()`` lifts it."""
    from sdl.training import Trainer

    original = Trainer.step

    def patch(lr: float, fail=_boom) -> None:
        def step(self):
            if self.config.lr == lr:
                fail()
            return original(self)

        monkeypatch.setattr(Trainer, "step", step)

    return patch
