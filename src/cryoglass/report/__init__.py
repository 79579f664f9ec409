"""HTML reports and figures shared by the commands."""
