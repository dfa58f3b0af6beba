"""Built-in risk filters, persistence sinks and feeds."""
