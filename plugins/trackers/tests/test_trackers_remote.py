"""--aim_remote_server_ip/--aim_remote_server_port, or --aim_url: a real `aim server` on the loopback address."""

import gc
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"aim server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"aim server did not listen on port {port} within {seconds} s")


@pytest.fixture
def aim_server(tmp_path):
    from aim import Repo

    repo = tmp_path / "server-repo"
    Repo.from_path(str(repo), init=True)
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from aim.cli.cli import cli_entry_point; cli_entry_point()",
            "server",
            "--repo",
            str(repo),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, proc)
        yield repo, port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and any worker it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("how", ["ip_and_port", "aim_url"])
def test_training_records_to_a_remote_aim_server(aim_server, tmp_path, train_args, file_log, aim_reader, how):
    from tuning_core.pipeline import run_training

    repo, port = aim_server
    out = tmp_path / "out"
    where = (
        ["--aim_remote_server_ip", "127.0.0.1", "--aim_remote_server_port", str(port)]
        if how == "ip_and_port"
        else ["--aim_url", f"aim://127.0.0.1:{port}"]
    )
    run_training(train_args(out, "--trackers", "aim", *where, "--exp_metadata", '{"where": "remote"}'))
    info_path = out / "aim_tracker.json"
    assert f'"repo": "aim://127.0.0.1:{port}"' in info_path.read_text()
    # The server wrote into its own repository; read that folder back directly.
    local = tmp_path / "local-view.json"
    local.write_text(info_path.read_text().replace(f"aim://127.0.0.1:{port}", str(repo)))
    _, run, series = aim_reader(local)
    assert series[("loss", "train")] == file_log(out)["training_loss"]
    assert run["exp_metadata"] == {"where": "remote"} and run["hparams"]["max_steps"] == 4
    assert not (out / "aim").exists()  # no local default repository when a server is given
    gc.collect()  # Aim releases its remote handles when collected: do it while the server is up
