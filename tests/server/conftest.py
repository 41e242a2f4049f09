"""Fixtures for the server tests: a model repository built from code and a running server on a
free loopback port (in this process, on a thread)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # server_helpers

from server_helpers import Http, write_repository


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory):
    return write_repository(str(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def server(repo_dir):
    from runnx.server import ServeDefaults, Server

    srv = Server(repo_dir, port=0, defaults=ServeDefaults(intra_op_threads=1),
                 max_body_bytes=1 << 20).start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server):
    c = Http(server.port)
    yield c
    c.close()
