"""One torch thread for tests of small tensors: thread start-up and barrier waits dominate, and on
a busy 2-core machine an OpenMP barrier waiting for a descheduled thread makes each op ~20x
slower. Test modules import `one_torch_thread` (autouse, per module)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
