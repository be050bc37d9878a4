"""The hold-queue console (SPEC §14.2): server-rendered pages for the people who clear holds."""
