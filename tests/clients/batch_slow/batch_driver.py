"""A batch scoring script that takes its time, so that a job can be canceled while it runs:
5 s per mini-batch, each file of which it reports as done."""

import time


def init():
    pass


def run(mini_batch):
    time.sleep(5)
    return mini_batch
