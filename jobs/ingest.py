from nurture_lake.jobs.ingest import main

if __name__ == "__main__":
    main()
