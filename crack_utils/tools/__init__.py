"""Tools around the study that no notebook imports: what a device call carries (:mod:`.device_call`)."""
