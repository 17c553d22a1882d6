"""The deploy engine: DBOS workflows, their steps, and the triggers that start them."""
