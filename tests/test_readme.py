"""The README's tour works exactly as written, against a real server (only the port differs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Server, run_cli

README = Path(__file__).parent.parent / "README.md"
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def tour_blocks() -> list[tuple[str, str]]:
    text = README.read_text()
    tour = text[text.index("<!-- tour -->") : text.index("<!-- /tour -->")]
    return [(lang, code) for lang, code in FENCE.findall(tour) if lang in ("bash", "python")]


@pytest.fixture
def demo(server: Server) -> dict[str, str]:
    """What `make run` does before serving: `patron demo`, whose output holds the key and a curl line."""
    printed = run_cli(server.data_dir, "demo").stdout
    key = re.search(r"api key:\s+([0-9a-f]{32})", printed)
    curl = re.search(r"^\s+(curl .*)$", printed, re.M)
    assert key and curl, printed
    return {"key": key.group(1), "curl": curl.group(1)}


def run_block(server: Server, demo: dict[str, str], lang: str, code: str) -> str:
    code = code.replace("localhost:8443", f"localhost:{server.port}")
    code = code.replace(".venv/bin/patron", f"{sys.executable} -m patron")
    env = {
        **os.environ,
        "PATRON_KEY": demo["key"],
        "PATRON_CA": str(server.ca),
        "PATRON_DATA_DIR": str(server.data_dir),
    }
    command = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{lang} block failed:\n{code}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_curl_line_printed_by_the_demo_answers(server: Server, demo: dict[str, str]) -> None:
    curl = demo["curl"].replace("localhost:8443", f"localhost:{server.port}")
    done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and '"environment":"staging"' in done.stdout, done.stdout + done.stderr


def test_every_tour_block_runs_and_shows_what_it_says(server: Server, demo: dict[str, str]) -> None:
    blocks = tour_blocks()
    assert len(blocks) >= 6
    outputs = [run_block(server, demo, lang, code) for lang, code in blocks]
    everything = "\n".join(outputs)
    account_hash = re.search(r'"account_hash":"([0-9a-f]{16})"', everything)
    assert account_hash, everything
    assert "API key is not authorised to access this resource" in everything
    assert "429" in everything  # the burst met the limit
    assert f"{account_hash.group(1)} staging" in everything  # the Python example
    assert "my shop" in run_cli(server.data_dir, "accounts", "list").stdout
    assert "/v2/account" in everything
    assert '"lastname":"Lovelace"' in everything and '"error_path":"root > id"' in everything
    assert "imported: 1 accepted, 0 rejected" in everything  # the historic import
    assert '"name":"Ada Lovelace"' in everything and '"revenue":42.5' in everything  # the profile
