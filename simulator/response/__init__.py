"""Measuring a running program's effect from its members' transaction log.

* :mod:`simulator.response.generate` writes a member log from the engine itself, with a known
  truth (the same customers' purchases without the program), to prove the estimators;
* :mod:`simulator.response.estimate` estimates self-selection and the lift after enrolment
  (a staggered-adoption event study, Callaway & Sant'Anna 2021, not-yet-joined controls);
* :mod:`simulator.response.command` is ``loyalty-sim estimate-response``.
"""
