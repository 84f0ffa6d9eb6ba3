"""booking-guard's service layer: settings, HTTP app, booking workflow, guards, Cal.com client."""
