"""From the points ledger and the monthly P&L to what finance signs: IFRS 15 liability, NPV,
ROI, payback."""
