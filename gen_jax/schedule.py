"""Jobs run `parallel` at once, each in two steps: training, then evaluation.

A job's training waits for the trainings of the jobs it needs (their checkpoints), not for
their evaluations, so a long final evaluation (a VAE's IWAE bound over the whole test split)
does not hold back the runs built on that VAE.
"""

import concurrent.futures
from typing import Callable


def run_jobs(jobs: list[tuple[str, int]], needs: Callable, train: Callable,
             parallel: int, evaluate: Callable = lambda job, trained: trained) -> dict:
  """train(job), then evaluate(job, its training's outcome), for every job, `parallel` calls
  at once, in the order of `jobs` among those ready; {job: evaluate's outcome}. A job trains
  after the trainings of needs(job) (those among `jobs`). A str outcome is a failure: a job
  whose training failed is not evaluated, and one whose needed job's training failed is not
  trained; either outcome says why."""
  listed = set(jobs)

  def after(job, step):
    return [d for d in needs(job) if d in listed] if step is train else [job]

  pending = [(job, step) for job in jobs for step in (train, evaluate)]
  trained, outcomes, running = {}, {}, {}
  with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
    while pending or running:
      for job, step in [u for u in pending if all(d in trained for d in after(*u))]:
        failed = [d for d in after(job, step) if isinstance(trained[d], str)]
        if failed or len(running) < parallel:
          pending.remove((job, step))
          if failed and step is train:
            trained[job] = f"not run: {failed[0][0]} seed {failed[0][1]} failed"
          elif failed:
            outcomes[job] = trained[job]
          else:
            args = (job,) if step is train else (job, trained[job])
            running[pool.submit(step, *args)] = (job, step)
      if running:  # else: jobs were skipped above, and others may now be ready
        finished, _ = concurrent.futures.wait(running, return_when="FIRST_COMPLETED")
        for future in finished:
          job, step = running.pop(future)
          (trained if step is train else outcomes)[job] = future.result()
  return outcomes
