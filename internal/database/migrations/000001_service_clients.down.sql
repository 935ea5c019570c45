DROP TABLE IF EXISTS service_clients;
