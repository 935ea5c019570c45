DROP TABLE IF EXISTS meeting_controllers;
