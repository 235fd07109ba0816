"""Offline preference algorithms: DPO, KTO, CPO, SimPO, ORPO and reward models."""
