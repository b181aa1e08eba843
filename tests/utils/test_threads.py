"""The one thread policy (lrreid.utils.device.choose_num_threads / configure_threads)."""
import torch

from lrreid.utils import device


def _machine(monkeypatch, cores, load, omp=None):
    monkeypatch.setattr(device, "available_cores", lambda: cores)
    monkeypatch.setattr(device.os, "getloadavg", lambda: (load, load, load))
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)


def test_auto_uses_all_cores_of_an_idle_machine_and_shares_them_between_processes(monkeypatch):
    _machine(monkeypatch, cores=8, load=0.5)
    assert device.choose_num_threads(0)[0] == 8
    assert device.choose_num_threads(0, processes=2)[0] == 4
    assert device.choose_num_threads(0, processes=16)[0] == 1


def test_auto_uses_one_thread_when_the_load_already_fills_the_cores(monkeypatch):
    _machine(monkeypatch, cores=2, load=2.3)
    threads, why = device.choose_num_threads(0)
    assert threads == 1 and "busy" in why


def test_an_explicit_request_then_omp_num_threads_win_over_auto(monkeypatch):
    _machine(monkeypatch, cores=2, load=9.0, omp="2")
    assert device.choose_num_threads(0) == (2, "OMP_NUM_THREADS")
    assert device.choose_num_threads(3) == (3, "requested")


def test_configure_threads_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    _machine(monkeypatch, cores=4, load=0.0)
    try:
        assert device.configure_threads(0, processes=4) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_train_num_threads_is_a_setting():
    from lrreid.config import config_from_dict

    cfg = config_from_dict({"method": "pri", "train": {"num_threads": 1}})
    assert cfg.train.num_threads == 1


def test_negative_num_threads_is_a_one_line_config_error():
    import pytest

    from lrreid.config import config_from_dict
    from lrreid.errors import ConfigError

    with pytest.raises(ConfigError, match="num_threads must be >= 0"):
        config_from_dict({"method": "pri", "train": {"num_threads": -2}})
