"""The waitlist: patients who want an earlier time, and offers of freed places to them.

``entries`` joins and leaves the list, ``offers`` offers a freed place to the
next waiting patients (following the lifecycle's "place freed"), takes an
accepted offer through the same conditional booking as any booking, and runs
offers out. ``channels`` is the one table of how an offer reaches a patient.
"""
