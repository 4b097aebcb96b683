"""Progressive rollouts of an online endpoint: a candidate deployment moved through a plan of
mirror and traffic steps by a controller that judges each step by its gates."""
