"""Scoring metrics by deployment and minute: kept from the routers' reports, queried for
the Azure Monitor-shaped metrics API and the admin portal."""
