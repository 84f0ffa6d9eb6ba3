"""Cal.com: the port the workflow talks to, the HTTP client, and the simulator."""
