"""The applications on top of the pipeline: the command line (`cli`), the resident server (`serve`,
`client`), the job runner they share (`jobs`) and the batch evaluation (`eval`)."""
